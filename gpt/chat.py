"""The chat format: special tokens, the conversation renderer with its loss mask, and the Jinja twin for export.

A conversation is a list of messages ``{"role": "system" | "user" | "assistant", "content": str}``.
It renders as ``<|endoftext|>`` (the start of a sequence), then per message ``<|role|>`` + the content
encoded as ordinary text + ``<|end|>``; a prompt for a reply ends with ``<|assistant|>``::

    <|endoftext|><|system|>Be brief.<|end|><|user|>Hi!<|end|><|assistant|>Hello.<|end|>

The mask marks the tokens the model is trained to predict: the assistant's content and its ``<|end|>``
(so it learns to stop), never the prompt, which the model reads but is not asked to write.
``CHAT_TEMPLATE`` renders the same ids through ``transformers``' ``apply_chat_template``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gpt.bpe import ENDOFTEXT, Tokenizer
from gpt.errors import InputError

ROLES = ("system", "user", "assistant")
END = "<|end|>"
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", END)

# Equivalent to render() for messages that pass check_messages, except that special-token text inside
# content becomes that special token here (transformers tokenizes the rendered string) but stays plain
# text in render(). The raise_exception calls mirror check_messages' role rules.
CHAT_TEMPLATE = (
    "{{- '<|endoftext|>' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] -%}"
    "{{- raise_exception('unknown role ' + message['role'] + ': use system, user or assistant') -}}"
    "{%- elif message['role'] == 'system' and not loop.first -%}"
    "{{- raise_exception('a system message may only come first') -}}"
    "{%- endif -%}"
    "{{- '<|' + message['role'] + '|>' + message['content'] + '<|end|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


class ChatError(InputError):
    """A conversation that cannot be rendered (bad role, empty answer, ...); one line, exit code 2."""


# ----------------------------------------------------------------------------- tokens

def add_chat_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """The same tokenizer with any missing chat tokens (and <|endoftext|>) appended as special tokens.

    Existing ids do not move, so a base model's weights stay valid; its embedding grows with grow_embeddings.
    """
    specials = dict(tokenizer.special_tokens)
    next_id = max([len(tokenizer.vocab) - 1, *specials.values()]) + 1
    for name in (ENDOFTEXT, *CHAT_TOKENS):
        if name not in specials:
            specials[name] = next_id
            next_id += 1
    if specials == tokenizer.special_tokens:
        return tokenizer
    pattern = tokenizer.pattern_name if tokenizer.pattern_name != "custom" else tokenizer.pattern
    return Tokenizer(tokenizer.vocab, tokenizer.merges, pattern, specials)


def has_chat_tokens(tokenizer: Tokenizer) -> bool:
    return all(name in tokenizer.special_tokens for name in (ENDOFTEXT, *CHAT_TOKENS))


def stop_ids(tokenizer: Tokenizer) -> set[int]:
    """Token ids that end an assistant reply when generating: <|end|>, and <|endoftext|> as a safety net."""
    return {tokenizer.special_tokens[n] for n in (END, ENDOFTEXT) if n in tokenizer.special_tokens}


def until_stop(ids: list[int], tokenizer: Tokenizer) -> list[int]:
    """ids up to and including the first that ends a reply or a text (stop_ids); all of them if none does."""
    stop = stop_ids(tokenizer)
    return next((ids[:i + 1] for i, token in enumerate(ids) if token in stop), ids)


def _chat_ids(tokenizer: Tokenizer) -> dict[str, int]:
    if not has_chat_tokens(tokenizer):
        raise ChatError("this tokenizer has no chat tokens (<|user|>, <|assistant|>, ...): "
                        "add them with gpt.chat.add_chat_tokens and grow the model with grow_embeddings")
    return {name: tokenizer.special_tokens[name] for name in (ENDOFTEXT, *CHAT_TOKENS)}


# ----------------------------------------------------------------------------- rendering

def check_messages(messages: object) -> None:
    """Raise ChatError (one line) unless messages is a non-empty list of well-formed chat messages."""
    if not isinstance(messages, list) or not messages:
        raise ChatError("a conversation is a non-empty list of messages")
    for i, message in enumerate(messages, 1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ChatError(f"message {i} is not an object with 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ChatError(f"message {i} has unknown role {role!r}: use system, user or assistant")
        if role == "system" and i != 1:
            raise ChatError(f"message {i}: a system message may only come first")
        if not isinstance(content, str):
            raise ChatError(f"message {i} ({role}): content must be a string, not {type(content).__name__}")
        if role == "assistant" and not content.strip():
            raise ChatError(f"message {i}: the assistant's content is empty")


def render(tokenizer: Tokenizer, messages: Sequence[dict],
           add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
    """Messages -> (ids, mask); mask[i] is 1 iff ids[i] is a training target (assistant content and its <|end|>)."""
    check_messages(messages if isinstance(messages, list) else list(messages))
    special = _chat_ids(tokenizer)
    ids, mask = [special[ENDOFTEXT]], [0]
    for message in messages:
        target = int(message["role"] == "assistant")
        # disallowed_special=(): "<|end|>" typed by a user is text, so no content can forge a turn boundary
        content = tokenizer.encode(message["content"], disallowed_special=())
        ids += [special[f"<|{message['role']}|>"], *content, special[END]]
        mask += [0] + [target] * (len(content) + 1)
    if add_generation_prompt:
        ids.append(special["<|assistant|>"])
        mask.append(0)
    return ids, mask


def chat_template_for_export(tokenizer: Tokenizer) -> dict:
    """Keyword arguments for PreTrainedTokenizerFast (saved in tokenizer_config.json) of a chat model."""
    _chat_ids(tokenizer)
    # eos is <|end|>: the token a reply stops at. The model config's eos_token_id should list it too.
    return {"chat_template": CHAT_TEMPLATE, "bos_token": ENDOFTEXT, "eos_token": END, "pad_token": ENDOFTEXT}


# ----------------------------------------------------------------------------- the model's side

def grow_embeddings(model: nn.Module, new_vocab_size: int) -> int:
    """Grow wte and lm_head (tied or not) to new_vocab_size rows; returns the number of rows added.

    Old rows are kept bit for bit. New rows start at the mean of the old rows: a new token then looks
    like an average token instead of a random one, so its first logits do not swamp the known tokens'.
    Call before building the optimizer (its state is per parameter).
    """
    old = model.wte.weight
    n_old, dim = old.shape
    if new_vocab_size <= n_old:
        return 0
    tied = model.lm_head.weight is old
    with torch.no_grad():
        wte = nn.Embedding(new_vocab_size, dim, device=old.device, dtype=old.dtype)
        wte.weight[:n_old] = old
        wte.weight[n_old:] = old.mean(dim=0)
        model.wte = wte
        if tied:
            model.lm_head.weight = wte.weight
        else:
            head = model.lm_head.weight
            lm_head = nn.Linear(dim, new_vocab_size, bias=False, device=head.device, dtype=head.dtype)
            lm_head.weight[:n_old] = head
            lm_head.weight[n_old:] = head.mean(dim=0)
            model.lm_head = lm_head
    model.config.vocab_size = new_vocab_size
    return new_vocab_size - n_old
