"""The notebook "如何流式传输补全" (How to stream completions), its four sections run as written.

The code of each section is the notebook's, unchanged except:
- the client: ``OpenAI(base_url=<the test server>, api_key="sk-test", max_retries=0)`` instead of
  ``OpenAI(api_key=os.environ.get("OPENAI_API_KEY", ...))`` (the session ``client`` fixture; no retries,
  so a 5xx is never hidden behind a silent second attempt);
- sections 1 and 3 ask the model to count to 100. SmolLM2-135M does not stop after 100: it runs on for
  the whole 4096-token context (over two minutes on this machine). Only there, ``max_tokens=COUNT_MAX_TOKENS``
  is added to keep the request short. Nothing else is changed; the assertions come after the notebook code.
"""

from __future__ import annotations

import time  # 用于测量 API 调用时间

import pytest
from openai import OpenAI

pytestmark = pytest.mark.e2e

COUNT_MAX_TOKENS = 120  # added by the tests: see the module docstring
FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter"}


def test_section1_typical_chat_completion(client: OpenAI) -> None:
    """1. 典型的聊天补全响应是什么样的: one response, computed whole, with usage."""
    # OpenAI ChatCompletion 请求示例
    # https://platform.openai.com/docs/guides/text-generation/chat-completions-api

    # 记录发送请求之前的时间
    start_time = time.time()

    # 发送 ChatCompletion 请求以计数到 100
    response = client.chat.completions.create(
        model='gpt-4o-mini',
        messages=[
            {'role': 'user', 'content': '数到 100,每个数字之间用逗号隔开,没有换行符。例如:1, 2, 3, ...'}
        ],
        temperature=0,
        max_tokens=COUNT_MAX_TOKENS,  # added by the tests: the small model never stops counting
    )

    # 计算接收响应所需的时间
    response_time = time.time() - start_time

    # 打印延迟时间和接收到的文本
    print(f"请求后 {response_time:.2f} 秒收到完整响应")
    print(f"完整响应:\n{response}")

    reply = response.choices[0].message
    print(f"提取的回复: \n{reply}")

    reply_content = response.choices[0].message.content
    print(f"提取的内容: \n{reply_content}")

    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.model == "gpt-4o-mini"
    assert len(response.choices) == 1
    assert response.choices[0].index == 0
    assert response.choices[0].finish_reason in {"stop", "length"}
    assert reply.role == "assistant"
    assert isinstance(reply_content, str) and reply_content.strip()
    usage = response.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= COUNT_MAX_TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if response.choices[0].finish_reason == "length":
        assert usage.completion_tokens == COUNT_MAX_TOKENS


def test_section2_streamed_chat_completion(client: OpenAI) -> None:
    """2. 如何流式传输聊天补全: a role chunk, content deltas, then an empty delta with the finish reason."""
    # 具有 stream=True 的 OpenAI ChatCompletion 请求示例
    # https://platform.openai.com/docs/api-reference/streaming#chat/create-stream

    # 一个 ChatCompletion 请求
    response = client.chat.completions.create(
        model='gpt-4o-mini',
        messages=[
            {'role': 'user', 'content': "1+1 是多少?用一个词回答。"}
        ],
        temperature=0,
        stream=True  # 这次,我们将 stream 设置为 True
    )

    chunks = []  # (tests) what the notebook prints, kept for the assertions
    for chunk in response:
        print(chunk)
        print(chunk.choices[0].delta.content)
        print("****************")
        chunks.append(chunk)

    assert len(chunks) >= 3
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)
    first, *middle, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert first.choices[0].finish_reason is None
    assert middle, "no content chunk between the role chunk and the finish chunk"
    for chunk in middle:
        assert chunk.choices[0].delta.role is None
        assert isinstance(chunk.choices[0].delta.content, str) and chunk.choices[0].delta.content
        assert chunk.choices[0].finish_reason is None
    assert last.choices[0].delta.content is None
    assert last.choices[0].delta.role is None
    assert last.choices[0].delta.model_dump(exclude_none=True) == {}
    assert last.choices[0].finish_reason in FINISH_REASONS


def test_section3_time_saved_by_streaming(client: OpenAI) -> None:
    """3. 流式传输聊天补全可以节省多少时间: the first chunk comes long before the last one."""
    # 具有 stream=True 的 OpenAI ChatCompletion 请求示例
    # https://platform.openai.com/docs/api-reference/streaming#chat/create-stream

    # 记录发送请求之前的时间
    start_time = time.time()

    # 发送 ChatCompletion 请求以计数到 100
    response = client.chat.completions.create(
        model='gpt-4o-mini',
        messages=[
            {'role': 'user', 'content': '数到 100,每个数字之间用逗号隔开,没有换行符。例如:1, 2, 3, ...'}
        ],
        temperature=0,
        stream=True,  # 再次,我们将 stream 设置为 True
        max_tokens=COUNT_MAX_TOKENS,  # added by the tests: the small model never stops counting
    )

    # 创建变量以收集块流
    collected_chunks = []
    collected_messages = []
    chunk_times = []  # (tests) every chunk's latency, kept for the assertions

    # 迭代事件流
    for chunk in response:
        chunk_time = time.time() - start_time  # 计算块的延迟时间
        collected_chunks.append(chunk)  # 保存事件响应
        chunk_message = chunk.choices[0].delta.content  # 提取消息
        collected_messages.append(chunk_message)  # 保存消息
        print(f"请求后 {chunk_time:.2f} 秒收到消息: {chunk_message}")  # 打印延迟和文本
        chunk_times.append(chunk_time)

    # 打印延迟时间和接收到的文本
    print(f"请求后 {chunk_time:.2f} 秒收到完整响应")
    # 清理 collected_messages 中的 None
    collected_messages = [m for m in collected_messages if m is not None]
    full_reply_content = ''.join(collected_messages)
    print(f"完整对话: {full_reply_content}")

    assert full_reply_content.strip()
    assert collected_messages[0] == ""  # the role chunk
    assert collected_chunks[-1].choices[0].finish_reason in {"stop", "length"}
    # Streaming pays off: the first chunk (and the first content) arrive well before the last one.
    first_content = next(t for t, m in zip(chunk_times, [c.choices[0].delta.content for c in collected_chunks],
                                           strict=True) if m)
    total = chunk_times[-1]
    assert chunk_times[0] < total / 2, (chunk_times[0], total)
    assert first_content < total / 2, (first_content, total)
    # Chunks are flushed one by one while generating, not in one burst at the end.
    content_times = [t for t, c in zip(chunk_times, collected_chunks, strict=True) if c.choices[0].delta.content]
    assert len(content_times) > 10
    assert content_times[len(content_times) // 2] < total - 0.2 * (total - first_content)
    # Same request without streaming: the same text (temperature 0).
    whole = client.chat.completions.create(
        model='gpt-4o-mini',
        messages=[{'role': 'user', 'content': '数到 100,每个数字之间用逗号隔开,没有换行符。例如:1, 2, 3, ...'}],
        temperature=0,
        max_tokens=COUNT_MAX_TOKENS,
    )
    assert full_reply_content == whole.choices[0].message.content


def test_section4_usage_of_a_streamed_completion(client: OpenAI) -> None:
    """4. 如何获取流式聊天补全响应的令牌使用数据: usage only on an extra last chunk with ``choices == []``."""
    # 具有 stream=True 和 stream_options={"include_usage": True} 的 OpenAI ChatCompletion 请求示例

    # 一个 ChatCompletion 请求
    response = client.chat.completions.create(
        model='gpt-4o-mini',
        messages=[
            {'role': 'user', 'content': "1+1 是多少?用一个词回答。"}
        ],
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},  # 检索流响应的令牌使用情况
    )

    chunks = []  # (tests) what the notebook prints, kept for the assertions
    for chunk in response:
        print(f"choices: {chunk.choices}\nusage: {chunk.usage}")
        print("****************")
        chunks.append(chunk)

    *body, last = chunks
    assert body, "only a usage chunk"
    for chunk in body:
        assert chunk.usage is None
        assert len(chunk.choices) == 1
    assert body[-1].choices[0].finish_reason in FINISH_REASONS
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens > 0
    assert last.usage.completion_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    content_chunks = [c for c in body if c.choices[0].delta.content]
    assert 0 < len(content_chunks) <= last.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1
