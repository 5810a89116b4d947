// Markdown to DOM nodes, for model output. Safety by construction: text only ever becomes text nodes
// (createTextNode / textContent) inside elements this file names; nothing is parsed as HTML, so a
// `<script>` or `<img onerror>` in an answer shows as the characters it is. Links keep only http(s)
// and mailto targets; images are shown as links, so an answer cannot make the page load anything.
//
// Supported: paragraphs (single newlines are line breaks), # headings, ``` fences (an unclosed fence
// runs to the end, as while streaming), > quotes, - * + and 1. lists, --- rules, | tables |,
// `code`, **bold**, *italic*, ~~strike~~, [links](https://…) and \ escapes.

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>\s?/;
const BULLET = /^\s{0,3}([-*+])\s+/;
const ORDERED = /^\s{0,3}(\d{1,9})[.)]\s+/;
const TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

function el(tag, ...children) {
  const node = document.createElement(tag);
  for (const child of children) node.append(child);
  return node;
}

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  appendBlocks(fragment, text.replace(/\r\n?/g, "\n").split("\n"));
  return fragment;
}

function appendBlocks(parent, lines) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === "") {
      i += 1;
    } else if (FENCE.test(line)) {
      i = codeBlock(parent, lines, i);
    } else if (HEADING.test(line)) {
      const [, hashes, title] = HEADING.exec(line);
      parent.append(inline(el(`h${hashes.length}`), title));
      i += 1;
    } else if (RULE.test(line)) {
      parent.append(el("hr"));
      i += 1;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].replace(QUOTE, ""));
      const quote = el("blockquote");
      appendBlocks(quote, quoted);
      parent.append(quote);
    } else if (BULLET.test(line) || ORDERED.test(line)) {
      i = list(parent, lines, i);
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
      i = table(parent, lines, i);
    } else {
      i = paragraph(parent, lines, i);
    }
  }
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || BULLET.test(line) || ORDERED.test(line);
}

function codeBlock(parent, lines, start) {
  const [, fence, lang] = FENCE.exec(lines[start]);
  const body = [];
  let i = start + 1;
  while (i < lines.length && !lines[i].trimStart().startsWith(fence)) body.push(lines[i++]);
  const code = el("code", body.join("\n"));
  if (lang) code.dataset.lang = lang;
  parent.append(el("pre", code));
  return i + 1;
}

function list(parent, lines, start) {
  const ordered = ORDERED.test(lines[start]);
  const marker = ordered ? ORDERED : BULLET;
  const node = el(ordered ? "ol" : "ul");
  if (ordered) {
    const first = Number(ORDERED.exec(lines[start])[1]);
    if (first !== 1) node.start = first;
  }
  let i = start;
  while (i < lines.length && marker.test(lines[i])) {
    const item = [lines[i].replace(marker, "")];
    i += 1;
    while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !marker.test(lines[i])) item.push(lines[i++].trim());
    const li = el("li");
    appendBlocks(li, item);
    if (li.childNodes.length === 1 && li.firstChild.nodeName === "P") li.replaceChildren(...li.firstChild.childNodes);
    node.append(li);
    while (i < lines.length && lines[i].trim() === "" && i + 1 < lines.length && marker.test(lines[i + 1])) i += 1;
  }
  parent.append(node);
  return i;
}

function cells(line) {
  return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((cell) => cell.trim());
}

function table(parent, lines, start) {
  const head = el("tr", ...cells(lines[start]).map((cell) => inline(el("th"), cell)));
  const body = el("tbody");
  let i = start + 2;
  while (i < lines.length && lines[i].includes("|") && lines[i].trim() !== "") {
    body.append(el("tr", ...cells(lines[i]).map((cell) => inline(el("td"), cell))));
    i += 1;
  }
  parent.append(el("table", el("thead", head), body));
  return i;
}

function paragraph(parent, lines, start) {
  const p = el("p");
  let i = start;
  while (i < lines.length && lines[i].trim() !== "" && (i === start || !startsBlock(lines[i]))) {
    if (i > start) p.append(el("br"));
    inline(p, lines[i]);
    i += 1;
  }
  parent.append(p);
  return i;
}

// Inline spans, earliest match first; what no rule matches is plain text.
const INLINE = [
  { re: /\\([\\`*_{}[\]()#+\-.!|~<>])/, make: (m) => document.createTextNode(m[1]) },
  { re: /(`+)([\s\S]+?)\1/, make: (m) => el("code", m[2]) },
  { re: /!?\[([^\]\n]*)\]\(\s*([^)\s]+)(?:\s+"[^"]*")?\s*\)/, make: (m) => link(m[1], m[2]) },
  { re: /(\*\*|__)(?=\S)([\s\S]*?\S)\1/, make: (m) => inline(el("strong"), m[2]) },
  { re: /~~(?=\S)([\s\S]*?\S)~~/, make: (m) => inline(el("del"), m[1]) },
  { re: /(\*|_)(?=[^\s*_])([\s\S]*?[^\s\\])\1(?![\w*])/, make: (m) => inline(el("em"), m[2]) },
];

function inline(parent, text) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const match = rule.re.exec(rest);
      if (match && (best === null || match.index < best.match.index)) best = { rule, match };
    }
    if (best === null) {
      parent.append(document.createTextNode(rest));
      break;
    }
    if (best.match.index > 0) parent.append(document.createTextNode(rest.slice(0, best.match.index)));
    parent.append(best.rule.make(best.match));
    rest = rest.slice(best.match.index + best.match[0].length);
  }
  return parent;
}

function link(label, url) {
  const text = label || url;
  if (!SAFE_URL.test(url)) return document.createTextNode(text);
  const a = inline(el("a"), text);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}
