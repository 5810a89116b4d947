// The conversation on screen: user turns and assistant turns with one column per choice (n side by
// side). Each column shows its answer as Markdown or as tokens, and has Copy and "Use this" buttons.

import { renderMarkdown } from "./markdown.js";
import { renderTokens } from "./tokens.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, title, onClick) {
  const node = el("button", "ghost small", label);
  node.type = "button";
  node.title = title;
  node.addEventListener("click", onClick);
  return node;
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = el("textarea");
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

export class Transcript {
  constructor(root) {
    this.root = root;
    this.views = new WeakMap();
  }

  // The logprobs behind a token span of the token view (for its hover tip).
  entriesOf(span) {
    const view = this.views.get(span.closest("article.assistant"));
    const index = Number(span.closest(".choice")?.dataset.index);
    return view?.answer?.choices.get(index)?.logprobs ?? null;
  }

  clear() {
    this.root.replaceChildren();
  }

  addUser(text) {
    const turn = el("article", "turn user");
    turn.dataset.role = "user";
    turn.append(el("header", "", "user"), el("div", "md", text));
    this.root.append(turn);
    this.scroll();
    return turn;
  }

  addAssistant(onSelect) {
    const view = new AssistantView(onSelect);
    this.views.set(view.root, view);
    this.root.append(view.root);
    this.scroll();
    return view;
  }

  scroll() {
    const nearBottom = this.root.scrollHeight - this.root.scrollTop - this.root.clientHeight < 120;
    if (nearBottom) this.root.scrollTop = this.root.scrollHeight;
  }
}

export class AssistantView {
  constructor(onSelect) {
    this.onSelect = onSelect;
    this.root = el("article", "turn assistant");
    this.root.dataset.role = "assistant";
    this.status = el("span", "status");
    const header = el("header", "", "assistant ");
    header.append(this.status);
    this.columns = el("div", "choices");
    this.error = el("p", "error-text");
    this.error.hidden = true;
    this.root.append(header, this.columns, this.error);
    this.views = new Map();
    this.tokenMode = false;
    this.answer = null;
    this.selected = 0;
    this.pending = false;
    this.setStatus("waiting");
  }

  setStatus(status, detail = "") {
    this.root.dataset.status = status;
    this.status.textContent = detail ? `${status} · ${detail}` : status;
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = false;
    this.setStatus("error");
  }

  reset() {
    this.root.dataset.runs = String(Number(this.root.dataset.runs ?? 0) + 1);
    this.columns.replaceChildren();
    this.views.clear();
    this.error.hidden = true;
    this.answer = null;
    this.selected = 0;
  }

  // Re-render at most once per animation frame, however fast chunks arrive.
  update(answer) {
    this.answer = answer;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  // Render now: an ended answer's status must never be shown before its last text.
  flush(answer) {
    this.answer = answer;
    this.render();
  }

  render() {
    if (!this.answer) return;
    const choices = this.answer.ordered;
    this.columns.dataset.n = String(choices.length);
    for (const choice of choices) {
      const view = this.views.get(choice.index) ?? this.column(choice.index);
      view.markdown.replaceChildren(renderMarkdown(choice.content));
      for (const call of choice.toolCalls) view.markdown.append(toolCall(call));
      view.markdown.dataset.length = String(choice.content.length);
      view.finish.textContent = choice.finishReason ? `finish: ${choice.finishReason}` : "";
      view.tokensButton.disabled = choice.logprobs.length === 0;
      if (this.tokenMode && choice.logprobs.length) view.tokens.replaceChildren(renderTokens(choice.logprobs));
      view.tokens.hidden = !(this.tokenMode && choice.logprobs.length);
      view.markdown.hidden = !view.tokens.hidden;
      view.root.classList.toggle("selected", choice.index === this.selected && choices.length > 1);
      view.useButton.hidden = choices.length < 2;
    }
  }

  column(index) {
    const root = el("div", "choice");
    root.dataset.index = String(index);
    const bar = el("div", "choice-bar");
    const label = el("span", "choice-label", `choice ${index}`);
    const finish = el("span", "finish");
    const tokensButton = button("Tokens", "show each token shaded by its probability (needs logprobs)", () => {
      this.tokenMode = !this.tokenMode;
      this.render();
    });
    tokensButton.classList.add("tokens-toggle");
    const copyButton = button("Copy", "copy this answer's text", async () => {
      const choice = this.answer?.choices.get(index);
      if (!choice) return;
      await copyText(choice.text);
      copyButton.textContent = "Copied";
      setTimeout(() => { copyButton.textContent = "Copy"; }, 1200);
    });
    copyButton.classList.add("copy");
    const useButton = button("Use this", "continue the conversation from this choice", () => {
      this.selected = index;
      this.onSelect(index);
      this.render();
    });
    bar.append(label, finish, tokensButton, copyButton, useButton);
    const markdown = el("div", "md answer-text");
    const tokens = el("div", "tokens");
    tokens.hidden = true;
    root.append(bar, markdown, tokens);
    this.columns.append(root);
    const view = { root, markdown, tokens, finish, tokensButton, useButton };
    this.views.set(index, view);
    return view;
  }
}

function toolCall(call) {
  const box = el("div", "tool-call");
  box.append(el("span", "tool-name", `tool call · ${call.function.name || "?"}`), el("pre", "", call.function.arguments));
  return box;
}
