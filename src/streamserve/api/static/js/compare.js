// The notebook's experiment: the same prompt asked without streaming (time to the whole answer),
// then streamed (time to the first token, and to the last), drawn on one chart.

import { Answer } from "./answer.js";
import { chat, streamChat } from "./api.js";
import { drawChart } from "./chart.js";
import { Timing, formatMs } from "./timing.js";

export const NOTEBOOK_PROMPT = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ...";

export async function runCompare(body, fields, signal) {
  fields.result.hidden = false;
  fields.whole.textContent = fields.ttft.textContent = fields.total.textContent = "…";
  fields.note.textContent = "asking for the whole answer…";

  const whole = new Timing();
  const response = Answer.fromCompletion(await chat(body, signal));
  whole.finish(response.usage);
  const wholeTokens = response.usage?.completion_tokens ?? 0;
  const wholeSeries = { label: "whole", color: "#b45309", step: true, points: [[0, 0], [whole.total, 0], [whole.total, wholeTokens]] };
  fields.whole.textContent = formatMs(whole.total);
  fields.note.textContent = "now streamed…";

  const streamed = new Timing();
  const answer = new Answer();
  const streamSeries = { label: "streamed", color: "#2563eb", step: true, points: streamed.points };
  for await (const chunk of streamChat(body, signal)) {
    streamed.addTokens(answer.push(chunk));
    if (streamed.ttft !== null) fields.ttft.textContent = formatMs(streamed.ttft);
    drawChart(fields.chart, [wholeSeries, streamSeries]);
  }
  streamed.finish(answer.usage);
  drawChart(fields.chart, [wholeSeries, streamSeries]);
  fields.ttft.textContent = formatMs(streamed.ttft);
  fields.total.textContent = formatMs(streamed.total);
  fields.result.dataset.wholeMs = String(whole.total);
  fields.result.dataset.ttftMs = String(streamed.ttft ?? "");
  fields.result.dataset.totalMs = String(streamed.total);
  fields.note.textContent = `Streamed, the first token came after ${formatMs(streamed.ttft)}; without streaming, `
    + `nothing came for ${formatMs(whole.total)} (${wholeTokens} tokens).`;
}
