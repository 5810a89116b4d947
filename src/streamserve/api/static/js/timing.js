// Per-answer timing as the notebook measures it: time to the first token, time to the whole answer,
// and the cumulative token count against time (for the chart). Times are ms since the request began.

export class Timing {
  constructor() {
    this.start = performance.now();
    this.firstToken = null;
    this.end = null;
    this.points = [[0, 0]];
    this.usage = null;
  }

  get tokens() {
    return this.points[this.points.length - 1][1];
  }

  now() {
    return performance.now() - this.start;
  }

  addTokens(count) {
    if (count <= 0) return;
    const t = this.now();
    if (this.firstToken === null) this.firstToken = t;
    this.points.push([t, this.tokens + count]);
  }

  // The usage chunk's completion_tokens is the true count: the last point is set to it.
  finish(usage) {
    this.end = this.now();
    this.usage = usage;
    const total = usage?.completion_tokens;
    if (Number.isFinite(total)) this.points.push([this.end, total]);
    else this.points.push([this.end, this.tokens]);
  }

  get ttft() {
    return this.firstToken;
  }

  get total() {
    return this.end ?? this.now();
  }

  // Completion tokens per second after the first token (decode speed, as llama.cpp's UI reports it).
  get rate() {
    const tokens = this.usage?.completion_tokens ?? this.tokens;
    const span = (this.end ?? this.now()) - (this.firstToken ?? 0);
    if (this.firstToken === null || tokens < 2 || span <= 0) return null;
    return ((tokens - 1) * 1000) / span;
  }
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
