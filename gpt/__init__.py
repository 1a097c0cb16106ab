"""gpt: a GPT language model with its own byte-level BPE tokenizer, in plain PyTorch.

Data flows one way: text -> bpe -> data -> model -> train -> checkpoint -> generate / serve.
"""

__version__ = "0.1.0"
