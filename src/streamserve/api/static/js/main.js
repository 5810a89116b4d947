// The playground's controller: wires the controls, the conversation, the timing and server panels.

import { Answer } from "./answer.js";
import { ApiError, apiKey, listModels, streamChat } from "./api.js";
import { drawChart } from "./chart.js";
import { NOTEBOOK_PROMPT, runCompare } from "./compare.js";
import { ServerPanel } from "./metrics.js";
import { ParamError, requestParams, systemPrompt } from "./params.js";
import { Timing, formatMs } from "./timing.js";
import { attachTokenTips } from "./tokens.js";
import { Transcript } from "./transcript.js";

const $ = (id) => document.getElementById(id);
const transcript = new Transcript($("transcript"));
const turns = []; // { user: string, answer: Answer | null, view: AssistantView }
let running = null; // the AbortController of the request in flight

function setBusy(busy) {
  $("send").disabled = busy;
  $("compare").disabled = busy;
  $("stop-button").disabled = !busy;
  $("regenerate").disabled = busy || turns.length === 0;
  document.body.dataset.busy = String(busy);
}

function history(upTo) {
  const messages = [];
  const system = systemPrompt();
  if (system) messages.push({ role: "system", content: system });
  for (const turn of turns.slice(0, upTo)) {
    const choice = turn.answer?.choices.get(turn.view.selected) ?? turn.answer?.ordered[0];
    if (!choice || !choice.text) continue; // a failed turn is left out of the conversation
    messages.push({ role: "user", content: turn.user }, choice.message());
  }
  messages.push({ role: "user", content: turns[upTo].user });
  return messages;
}

function showTiming(timing) {
  $("t-ttft").textContent = formatMs(timing.ttft);
  $("t-total").textContent = formatMs(timing.total);
  const rate = timing.rate;
  $("t-rate").textContent = rate === null ? "–" : rate.toFixed(1);
  const usage = timing.usage;
  $("t-tokens").textContent = usage ? `${usage.prompt_tokens} → ${usage.completion_tokens}` : String(timing.tokens);
  const panel = $("timing");
  panel.dataset.ttftMs = String(timing.ttft ?? "");
  panel.dataset.totalMs = String(timing.total);
  panel.dataset.rate = String(rate ?? "");
  panel.dataset.promptTokens = String(usage?.prompt_tokens ?? "");
  panel.dataset.completionTokens = String(usage?.completion_tokens ?? "");
  panel.dataset.state = timing.end === null ? "streaming" : "done";
  drawChart($("timing-chart"), [{ label: "streamed", color: "#2563eb", step: true, points: timing.points }]);
}

async function run(index) {
  const turn = turns[index];
  const view = turn.view;
  view.reset();
  let body;
  try {
    body = { model: $("model").value, messages: history(index), ...requestParams() };
  } catch (error) {
    if (!(error instanceof ParamError)) throw error;
    view.showError(error.message);
    return;
  }
  const answer = new Answer();
  turn.answer = answer;
  const timing = new Timing();
  running = new AbortController();
  setBusy(true);
  view.setStatus("streaming");
  try {
    for await (const chunk of streamChat(body, running.signal)) {
      timing.addTokens(answer.push(chunk));
      view.update(answer);
      showTiming(timing);
      transcript.scroll();
    }
    timing.finish(answer.usage);
    view.flush(answer);
    view.setStatus("done", finishSummary(answer));
  } catch (error) {
    timing.finish(answer.usage);
    view.flush(answer);
    if (error.name === "AbortError") view.setStatus("stopped");
    else view.showError(describe(error));
    if (error instanceof ApiError && error.status === 401) askForKey("The server refused the key.");
  } finally {
    running = null;
    showTiming(timing);
    setBusy(false);
  }
}

function finishSummary(answer) {
  return [...new Set(answer.ordered.map((choice) => choice.finishReason).filter(Boolean))].join(", ");
}

function describe(error) {
  return error instanceof ApiError ? error.describe() : `${error.name}: ${error.message}`;
}

function send(text) {
  transcript.addUser(text);
  const turn = { user: text, answer: null, view: null };
  turn.view = transcript.addAssistant(() => {});
  turns.push(turn);
  return run(turns.length - 1);
}

async function compare() {
  const prompt = $("prompt").value.trim() || NOTEBOOK_PROMPT;
  const messages = [];
  if (systemPrompt()) messages.push({ role: "system", content: systemPrompt() });
  messages.push({ role: "user", content: prompt });
  const fields = {
    result: $("compare-result"), whole: $("c-whole"), ttft: $("c-ttft"), total: $("c-total"),
    chart: $("compare-chart"), note: $("compare-note"),
  };
  running = new AbortController();
  setBusy(true);
  fields.result.dataset.state = "running";
  try {
    await runCompare({ model: $("model").value, messages, ...requestParams({ forCompare: true }) }, fields, running.signal);
    fields.result.dataset.state = "done";
  } catch (error) {
    fields.result.dataset.state = "error";
    fields.note.textContent = error.name === "AbortError" ? "stopped" : describe(error);
  } finally {
    running = null;
    setBusy(false);
  }
}

// --- the API key (only when the server asks for one) -------------------------------------------

let keyWaiters = [];

function askForKey(reason = "") {
  const dialog = $("key-dialog");
  $("key-error").textContent = reason;
  $("key-error").hidden = !reason;
  $("change-key").hidden = false;
  if (!dialog.open) dialog.showModal();
  return new Promise((resolve) => keyWaiters.push(resolve));
}

$("key-form").addEventListener("submit", () => {
  apiKey.set($("key-input").value.trim());
  $("key-input").value = "";
  const waiters = keyWaiters;
  keyWaiters = [];
  waiters.forEach((resolve) => resolve());
});

$("change-key").addEventListener("click", () => askForKey().then(connect));

// --- connecting: the model list, retried while the model loads ---------------------------------

// Every servable model, each with its state; one not loaded yet loads on its first request.
// Returns the chosen model's context, when it is loaded.
function showModels(models) {
  const select = $("model");
  const current = select.value;
  select.replaceChildren(...models.map((model) => {
    const option = new Option(model.state === "loaded" ? model.id : `${model.id} (${model.state})`, model.id);
    option.dataset.state = model.state ?? "loaded";
    return option;
  }));
  if (models.some((model) => model.id === current)) select.value = current;
  return models.find((model) => model.id === select.value)?.max_model_len;
}

// The states change as models load and unload: read them again whenever the picker is opened.
$("model").addEventListener("focus", () => listModels().then(showModels).catch(() => {}));

async function connect() {
  const status = $("connection");
  for (;;) {
    try {
      const context = showModels(await listModels());
      status.textContent = `connected${context ? ` · context ${context}` : ""}`;
      status.dataset.state = "ok";
      if (apiKey.get()) $("change-key").hidden = false;
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        status.textContent = "needs an API key";
        status.dataset.state = "key";
        await askForKey(apiKey.get() ? "That key was refused." : "");
        continue;
      }
      status.textContent = error instanceof ApiError && error.status === 503 ? "model loading…" : describe(error);
      status.dataset.state = "error";
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

// --- wiring -------------------------------------------------------------------------------------

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || running) return;
  $("prompt").value = "";
  send(text);
});
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("stop-button").addEventListener("click", () => running?.abort());
$("regenerate").addEventListener("click", () => {
  if (!running && turns.length) run(turns.length - 1);
});
$("clear").addEventListener("click", () => {
  running?.abort();
  turns.length = 0;
  transcript.clear();
  setBusy(false);
});
$("compare").addEventListener("click", () => {
  if (!running) compare();
});
$("response_format").addEventListener("change", () => {
  $("schema-field").hidden = $("response_format").value !== "json_schema";
});
attachTokenTips($("transcript"), $("token-tip"), (span) => transcript.entriesOf(span));

new ServerPanel({
  running: $("s-running"), waiting: $("s-waiting"), kv: $("s-kv"), kvBar: $("s-kv-bar"), rate: $("s-rate"),
  generated: $("s-generated"), ttft: $("s-ttft"), updated: $("s-updated"),
}).start();
setBusy(false);
connect().then(() => {
  document.body.dataset.ready = "true";
});
