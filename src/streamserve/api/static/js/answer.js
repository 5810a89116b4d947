// One assistant answer assembled from its chunks: choices demultiplexed by index (n > 1 interleaves
// them), content, tool calls, logprobs and finish reason per choice, and the usage chunk at the end.

export class Choice {
  constructor(index) {
    this.index = index;
    this.content = "";
    this.toolCalls = [];
    this.logprobs = [];
    this.finishReason = null;
  }

  // The text a copy button copies and the next turn sends back: content, then any tool calls.
  get text() {
    const calls = this.toolCalls.map((call) => `${call.function.name}(${call.function.arguments})`);
    return [this.content, ...calls].filter(Boolean).join("\n");
  }

  // The assistant message for the conversation history.
  message() {
    const message = { role: "assistant", content: this.content };
    if (this.toolCalls.length) message.tool_calls = this.toolCalls;
    return message;
  }
}

export class Answer {
  constructor() {
    this.choices = new Map();
    this.usage = null;
    this.error = null;
  }

  choice(index) {
    if (!this.choices.has(index)) this.choices.set(index, new Choice(index));
    return this.choices.get(index);
  }

  get ordered() {
    return [...this.choices.values()].sort((a, b) => a.index - b.index);
  }

  // Apply one chunk; returns how many tokens it carried (exact with logprobs, else one per delta).
  push(chunk) {
    if (chunk.usage) this.usage = chunk.usage;
    let tokens = 0;
    for (const part of chunk.choices ?? []) {
      const choice = this.choice(part.index);
      const delta = part.delta ?? {};
      const entries = part.logprobs?.content ?? [];
      const carried = Boolean(delta.content) || Boolean(delta.tool_calls?.length);
      if (delta.content) choice.content += delta.content;
      for (const call of delta.tool_calls ?? []) mergeToolCall(choice.toolCalls, call);
      if (entries.length) choice.logprobs.push(...entries);
      if (part.finish_reason) choice.finishReason = part.finish_reason;
      if (carried) tokens += entries.length || 1;
    }
    return tokens;
  }

  // Fill from a non-streamed response (the same fields, whole).
  static fromCompletion(body) {
    const answer = new Answer();
    for (const part of body.choices) {
      const choice = answer.choice(part.index);
      choice.content = part.message.content ?? "";
      choice.toolCalls = part.message.tool_calls ?? [];
      choice.logprobs = part.logprobs?.content ?? [];
      choice.finishReason = part.finish_reason;
    }
    answer.usage = body.usage ?? null;
    return answer;
  }
}

// OpenAI's tool-call deltas: the first for an index has id, type and name; later ones add arguments.
function mergeToolCall(calls, delta) {
  const at = delta.index ?? calls.length;
  if (!calls[at]) calls[at] = { id: delta.id ?? "", type: delta.type ?? "function", function: { name: "", arguments: "" } };
  const call = calls[at];
  if (delta.id) call.id = delta.id;
  if (delta.function?.name) call.function.name += delta.function.name;
  if (delta.function?.arguments) call.function.arguments += delta.function.arguments;
}
