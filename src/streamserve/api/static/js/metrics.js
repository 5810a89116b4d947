// The server panel: /metrics (Prometheus text) read every 1.5 s; running and waiting sequences,
// KV cache use, generated tokens per second (from the counter's growth) and the mean TTFT.

import { metricsText } from "./api.js";

const PERIOD_MS = 1500;

// name{labels} value lines -> Map of "name" (labels dropped, values summed) to number.
export function parsePrometheus(text) {
  const values = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([^\s{]+)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[2]);
    if (Number.isFinite(value)) values.set(match[1], (values.get(match[1]) ?? 0) + value);
  }
  return values;
}

export class ServerPanel {
  constructor(fields) {
    this.fields = fields;
    this.previous = null;
    this.timer = null;
  }

  start() {
    const tick = async () => {
      try {
        this.show(parsePrometheus(await metricsText()), performance.now());
      } catch (error) {
        this.fields.updated.textContent = `/metrics: ${error.message}`;
        this.fields.updated.dataset.state = "error";
      }
      this.timer = setTimeout(tick, PERIOD_MS);
    };
    tick();
  }

  show(values, now) {
    const f = this.fields;
    const get = (name) => values.get(`streamserve:${name}`);
    const generated = get("generation_tokens_total") ?? get("generation_tokens");
    f.running.textContent = String(get("num_requests_running") ?? "–");
    f.waiting.textContent = String(get("num_requests_waiting") ?? "–");
    const kv = get("kv_cache_usage_perc");
    f.kv.textContent = kv === undefined ? "–" : `${(kv * 100).toFixed(1)}%`;
    f.kvBar.style.width = `${Math.min(100, (kv ?? 0) * 100)}%`;
    f.generated.textContent = generated === undefined ? "–" : String(generated);
    if (this.previous && generated !== undefined) {
      const seconds = (now - this.previous.now) / 1000;
      const rate = (generated - this.previous.generated) / seconds;
      f.rate.textContent = seconds > 0 ? rate.toFixed(1) : "–";
    }
    const count = get("time_to_first_token_seconds_count");
    const sum = get("time_to_first_token_seconds_sum");
    f.ttft.textContent = count ? `${Math.round((sum / count) * 1000)} ms` : "–";
    this.previous = { now, generated };
    f.updated.textContent = `/metrics ${new Date().toLocaleTimeString()}`;
    f.updated.dataset.state = "ok";
    f.running.dataset.value = String(get("num_requests_running") ?? "");
  }
}
