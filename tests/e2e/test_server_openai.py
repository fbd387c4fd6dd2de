"""The official `openai` client against `tandem serve` on the tiny model."""
import openai
import pytest


@pytest.fixture(scope="module")
def client(shared_tiny_server):
    return openai.OpenAI(base_url=shared_tiny_server.base_url + "/v1", api_key="none", timeout=60, max_retries=0)


def test_completion(client):
    r = client.completions.create(model="tiny", prompt="hello world", max_tokens=5, temperature=0)
    assert r.id.startswith("cmpl-")
    assert r.object == "text_completion"
    assert r.model == "tiny"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_completion_stream_matches_non_stream(client):
    full = client.completions.create(model="tiny", prompt="the quick brown fox", max_tokens=8, temperature=0)
    chunks = list(client.completions.create(model="tiny", prompt="the quick brown fox", max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full.choices[0].text
    assert chunks[-1].usage.completion_tokens == 8
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


def test_chat(client):
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                       temperature=0)
    assert r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.usage.completion_tokens == 4
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                            temperature=0, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content


def test_seed_reproducible(client):
    kw = dict(model="tiny", prompt="once upon a time", max_tokens=12, temperature=1.0, top_p=0.95)
    a = client.completions.create(seed=1234, **kw).choices[0].text
    b = client.completions.create(seed=1234, **kw).choices[0].text
    assert a == b


def test_stop_string(client):
    base = client.completions.create(model="tiny", prompt="abc", max_tokens=16, temperature=0).choices[0].text
    if len(base) < 4:
        pytest.skip("the tiny model produced too little text to cut")
    stop = base[2:4]
    r = client.completions.create(model="tiny", prompt="abc", max_tokens=16, temperature=0, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert stop not in r.choices[0].text
    assert base.startswith(r.choices[0].text)


def test_errors_are_client_exceptions(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="x", max_tokens=1)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x", max_tokens=-3)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="x " * 5000, max_tokens=1)  # beyond max_model_len


def test_api_key(serve, tiny_model_dir):
    srv = serve(tiny_model_dir, "--api-key", "sekret")
    bad = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="wrong", timeout=30, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="tiny", prompt="x", max_tokens=1)
    good = openai.OpenAI(base_url=srv.base_url + "/v1", api_key="sekret", timeout=30, max_retries=0)
    assert good.completions.create(model="tiny", prompt="x", max_tokens=1).usage.completion_tokens == 1
    assert [m.id for m in good.models.list().data] == ["tiny"]
