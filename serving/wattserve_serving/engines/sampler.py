"""The llama.cpp sampler chain of one request: llama-cpp-python's own order (penalties,
grammar, then greedy, or top-k, typical, top-p, min-p, temperature and a seeded draw), with
OpenAI's ``logit_bias`` first when the request has one (``Llama._init_sampler`` has no place
for it, and a chain only appends)."""

from __future__ import annotations

from typing import Any

from wattserve_serving.engines.base import SamplingParams

MIN_P = 0.05  # llama-cpp-python's default, as before
DEFAULT_TOP_K = 40  # llama-cpp-python's default when the request sets none
# llama.cpp's LLAMA_DEFAULT_SEED: a dist sampler given it draws a random seed, so a request's
# seed is taken modulo it (seeds 0..2^32-2 as they are; 2^32-1, -1 and the like reproducible).
RANDOM_SEED = 0xFFFFFFFF


def sampler_chain(llm: Any, params: SamplingParams, grammar: Any, seed: int) -> Any:
    from llama_cpp import _internals

    chain: Any = _internals.LlamaSampler()  # type: ignore[no-untyped-call]
    if params.logit_bias:
        chain.add_logit_bias(llm.n_vocab(), dict(params.logit_bias))
    chain.add_penalties(n_vocab=llm.n_vocab(), penalty_last_n=llm.last_n_tokens_size,
                        penalty_repeat=1.0, penalty_freq=params.frequency_penalty,
                        penalty_present=params.presence_penalty)
    if grammar is not None:
        chain.add_grammar(llm._model, grammar)
    if params.temperature == 0.0:
        chain.add_greedy()
        return chain
    chain.add_top_k(params.top_k or DEFAULT_TOP_K)
    chain.add_typical(1.0, 1)
    chain.add_top_p(params.top_p, 1)
    chain.add_min_p(MIN_P, 1)
    chain.add_temp(params.temperature)
    chain.add_dist(seed % RANDOM_SEED)
    return chain
