// The parameter controls -> the request's OpenAI fields. Empty controls send nothing, so the
// server's defaults apply; JSON fields that do not parse are a readable error before any request.

const $ = (id) => document.getElementById(id);

export class ParamError extends Error {}

function number(id, parse = Number) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const value = parse(raw);
  if (!Number.isFinite(value)) throw new ParamError(`${id} must be a number`);
  return value;
}

function json(id, what) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new ParamError(`${what} is not valid JSON: ${error.message}`);
  }
}

// Every field but model and messages; `forCompare` drops n and logprobs (one plain answer).
export function requestParams({ forCompare = false } = {}) {
  const body = {
    temperature: number("temperature"),
    top_p: number("top_p"),
    max_tokens: number("max_tokens", (v) => parseInt(v, 10)),
    seed: number("seed", (v) => parseInt(v, 10)),
  };
  const stop = $("stop").value.split("\n").filter((line) => line !== "");
  if (stop.length) body.stop = stop;
  const n = number("n", (v) => parseInt(v, 10));
  if (!forCompare && n !== undefined && n !== 1) body.n = n;
  if (!forCompare && $("logprobs").checked) {
    body.logprobs = true;
    body.top_logprobs = number("top_logprobs", (v) => parseInt(v, 10)) ?? 0;
  }
  const format = $("response_format").value;
  if (format === "json_object") body.response_format = { type: "json_object" };
  if (format === "json_schema") body.response_format = { type: "json_schema", json_schema: json("json_schema", "the schema") };
  const tools = json("tools", "tools");
  if (tools !== undefined) {
    if (!Array.isArray(tools)) throw new ParamError("tools must be a JSON array");
    if (tools.length) {
      body.tools = tools;
      body.tool_choice = $("tool_choice").value;
    }
  }
  for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
  return body;
}

export function systemPrompt() {
  return $("system").value.trim();
}
