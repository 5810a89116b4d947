"""/metrics under vLLM's names: the values routers read, with vLLM's meanings, next to the streamserve ones."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from streamserve.api.metrics import Metrics
from streamserve.engine import EngineStats

STATS = EngineStats(running=3, waiting=2, kv_used_tokens=1024, kv_capacity_tokens=4096, prompt_tokens_total=1000,
                    cached_prompt_tokens_total=750, generation_tokens_total=40, lanes_free=1, lanes_total=4)


def samples(text: str) -> dict[str, tuple[dict[str, str], float]]:
    return {s.name: (s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples}


def test_vllm_names_carry_the_engine_snapshot_with_vllm_meanings() -> None:
    got = samples(Metrics(lambda: [("smollm2", STATS)]).render().decode())
    expected = {
        "vllm:num_requests_running": 3, "vllm:num_requests_waiting": 2,
        "vllm:kv_cache_usage_perc": 0.25, "vllm:gpu_cache_usage_perc": 0.25,
        "vllm:prefix_cache_queries_total": 1000, "vllm:prefix_cache_hits_total": 750,
        "vllm:gpu_prefix_cache_queries_total": 1000, "vllm:gpu_prefix_cache_hits_total": 750,
        "vllm:gpu_prefix_cache_hit_rate": 0.75,
    }
    for name, value in expected.items():
        labels, sample = got[name]
        assert sample == value, name
        assert labels == {"model_name": "smollm2", "engine": "0"}, name
    assert got["streamserve:num_requests_running"][1] == 3  # ours stay


def test_nothing_engine_side_before_the_model_is_loaded_and_no_division_by_zero() -> None:
    assert "vllm:" not in Metrics(lambda: []).render().decode()
    got = samples(Metrics(lambda: [("m", EngineStats())]).render().decode())
    assert got["vllm:gpu_prefix_cache_hit_rate"][1] == 0.0 and got["vllm:kv_cache_usage_perc"][1] == 0.0


def test_two_loaded_models_are_two_label_sets() -> None:
    got = [s for family in text_string_to_metric_families(
        Metrics(lambda: [("a", STATS), ("b", EngineStats(running=1))]).render().decode())
        for s in family.samples if s.name == "vllm:num_requests_running"]
    assert sorted((s.labels["model_name"], s.value) for s in got) == [("a", 3), ("b", 1)]


def test_the_metrics_route_serves_them_as_prometheus_text() -> None:
    from streamserve.api.routes import health_router
    from streamserve.api.state import ServerState
    from streamserve.config import ServerConfig

    app = FastAPI()
    app.include_router(health_router)
    app.state.streamserve = ServerState(config=ServerConfig(), metrics=Metrics(lambda: [("x", STATS)]))
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert samples(response.text)["vllm:num_requests_waiting"][1] == 2
