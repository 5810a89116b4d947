// The token view: each sampled token shaded by its probability, its top alternatives on hover.
// Token text goes into text nodes only, like everything the model produces.

export function probability(logprob) {
  return Math.exp(logprob);
}

// Low probability shades strong, near-certain tokens stay almost clear.
export function shade(p) {
  return `hsla(${Math.round(120 * p)}, 85%, 50%, ${(0.15 + 0.55 * (1 - p)).toFixed(3)})`;
}

function visible(token) {
  return token.replace(/\n/g, "↵\n").replace(/\t/g, "→\t");
}

export function renderTokens(entries) {
  const fragment = document.createDocumentFragment();
  entries.forEach((entry, i) => {
    const span = document.createElement("span");
    const p = probability(entry.logprob);
    span.className = "tok";
    span.textContent = visible(entry.token);
    span.style.backgroundColor = shade(p);
    span.dataset.index = String(i);
    span.dataset.prob = p.toFixed(4);
    fragment.append(span);
  });
  return fragment;
}

// One shared tooltip for every token view on the page.
export function attachTokenTips(container, tip, entriesOf) {
  container.addEventListener("mouseover", (event) => {
    const span = event.target.closest?.(".tok");
    if (!span || !container.contains(span)) return;
    const entry = entriesOf(span)?.[Number(span.dataset.index)];
    if (!entry) return;
    tip.replaceChildren(tipTable(entry));
    const box = span.getBoundingClientRect();
    tip.hidden = false;
    tip.style.left = `${Math.min(window.innerWidth - tip.offsetWidth - 8, Math.max(8, box.left))}px`;
    tip.style.top = `${box.bottom + 6}px`;
  });
  container.addEventListener("mouseout", (event) => {
    if (event.target.closest?.(".tok")) tip.hidden = true;
  });
}

function tipTable(entry) {
  const table = document.createElement("table");
  const alternatives = entry.top_logprobs?.length ? entry.top_logprobs : [entry];
  for (const alt of alternatives) {
    const row = table.insertRow();
    if (alt.token === entry.token) row.className = "chosen";
    const token = row.insertCell();
    token.textContent = JSON.stringify(alt.token);
    const p = row.insertCell();
    p.textContent = `${(probability(alt.logprob) * 100).toFixed(1)}%`;
  }
  if (!alternatives.some((alt) => alt.token === entry.token)) {
    const row = table.insertRow();
    row.className = "chosen";
    row.insertCell().textContent = JSON.stringify(entry.token);
    row.insertCell().textContent = `${(probability(entry.logprob) * 100).toFixed(1)}%`;
  }
  return table;
}
