#!/usr/bin/env python3
"""Renders chat templates the way HF transformers' apply_chat_template does (jinja2 sandbox with
trim_blocks, lstrip_blocks, loopcontrols, raise_exception; special tokens passed as variables) and writes
tests/fixtures/tokenizer/chat_templates.json, which tests/tokenizer/chat_template_fixture_test.cpp checks
tandem's native renderer against. Needs only Jinja2 (pip install Jinja2==3.1.6); run:
    python3 tools/render_chat_templates.py --out tests/fixtures/tokenizer/chat_templates.json
"""
import argparse
import json

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Jinja sources as shipped in the models' tokenizer_config.json.
TEMPLATES = {
    "llama3": {  # Meta Llama 3 / the Llama-3.1-8B directory in shared/models
        "bos": "<|begin_of_text|>", "eos": "<|eot_id|>",
        "jinja": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                 "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
                 "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                 "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
                 "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    },
    "chatml": {  # Qwen2
        "bos": "<|endoftext|>", "eos": "<|im_end|>",
        "jinja": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
                 "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
                 "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    },
    "llama2": {
        "bos": "<s>", "eos": "</s>",
        "jinja": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
                 "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
                 "system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and "
                 "system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + "
                 "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
                 "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
                 "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
                 "{% endfor %}",
    },
    "mistral": {
        "bos": "<s>", "eos": "</s>",
        "jinja": "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
                 "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] "
                 "+ eos_token}}{% endif %}{% endfor %}",
    },
}

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "  Hi there \n"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": " 4 "},
     {"role": "user", "content": "And 3+3?\n"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Grüße, 世界 🌍"},
     {"role": "assistant", "content": "Hallo!"}, {"role": "user", "content": "Bye"}],
    [{"role": "user", "content": ""}],
    [{"role": "user", "content": "line1\n\nline2\t"}, {"role": "assistant", "content": "ok"}],
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def render(jinja, bos, eos, messages, add_generation_prompt):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(jinja).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                         bos_token=bos, eos_token=eos)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cases = []
    for name, t in TEMPLATES.items():
        for conv in CONVERSATIONS:
            if name in ("llama2", "mistral") and conv[-1]["role"] != "user":
                continue  # these formats end on a user turn
            if name == "mistral" and conv[0]["role"] == "system":
                continue  # Mistral v0.1's template has no system role
            for gen in (True, False):
                cases.append({"template": name, "messages": conv, "add_generation_prompt": gen,
                              "expected": render(t["jinja"], t["bos"], t["eos"], conv, gen)})
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"renderer": f"jinja2 {jinja2.__version__}, transformers apply_chat_template settings",
                   "templates": TEMPLATES, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {args.out}")


if __name__ == "__main__":
    main()
