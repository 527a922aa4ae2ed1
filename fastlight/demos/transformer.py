"""A small encoder-decoder Transformer language model and the WikiText-2 dataset it trains on.

Lightning's `lightning.pytorch.demos.transformer` names and behaviour, with one difference: fastlight never downloads.
`WikiText2` reads `<data_dir>/wikitext-2.txt` when it is there (the training split of WikiText-2, e.g. the
`train.txt` of pytorch/examples' word_language_model); when it is not, it builds a small synthetic corpus in memory
and says so with a warning (`download=False` raises instead).
"""
import itertools
import math
import random
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from fastlight.core.module import LightningModule

_WIKITEXT2_SOURCE = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/train.txt"


class Transformer(nn.Module):
    """Embedding + sinusoidal positions -> torch.nn.Transformer (batch first) -> Linear -> log-softmax, flattened to
    (batch * seq, vocab_size). The decoder sees `target` under a causal mask."""

    def __init__(
        self,
        vocab_size: int = 33278,  # WikiText-2's vocabulary
        ninp: int = 200,
        nhead: int = 2,
        nhid: int = 200,
        nlayers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        self.embedding = nn.Embedding(vocab_size, ninp)
        self.transformer = nn.Transformer(
            d_model=ninp,
            nhead=nhead,
            num_encoder_layers=nlayers,
            num_decoder_layers=nlayers,
            dim_feedforward=nhid,
            dropout=dropout,
            batch_first=True,
        )
        self.decoder = nn.Linear(ninp, vocab_size)
        self.ninp = ninp
        self.vocab_size = vocab_size
        self.src_mask: Optional[Tensor] = None  # the causal mask of the last sequence length seen

    def generate_square_subsequent_mask(self, size: int) -> Tensor:
        """(size, size) float mask: 0 on and below the diagonal, -inf above (no attending to later positions)."""
        return torch.full((size, size), float("-inf")).triu(diagonal=1)

    def forward(self, inputs: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        length = inputs.shape[1]
        if self.src_mask is None or self.src_mask.size(0) != length:
            self.src_mask = self.generate_square_subsequent_mask(length).to(inputs.device)
        if mask is None:
            mask = self.generate_square_subsequent_mask(length).to(inputs.device)
        scale = math.sqrt(self.ninp)
        src = self.pos_encoder(self.embedding(inputs) * scale)
        tgt = self.pos_encoder(self.embedding(target) * scale)
        out = self.decoder(self.transformer(src, tgt, tgt_mask=mask))
        return F.log_softmax(out, dim=-1).view(-1, self.vocab_size)


class PositionalEncoding(nn.Module):
    """Adds a sinusoidal position encoding, then dropout. The table (max_len x dim) is built on first use on the
    input's device; it is neither a parameter nor a buffer, so it is not in the state dict.

    As in Lightning's demo, every position of a sequence of length L gets the table's row L (not rows 0..L-1): kept
    so that the demo trains to the same numbers as Lightning's.
    """

    def __init__(self, dim: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        self.dim = dim
        self.max_len = max_len
        self.pe: Optional[Tensor] = None

    def forward(self, x: Tensor) -> Tensor:
        if self.pe is None:
            self.pe = self._init_pos_encoding(device=x.device)
        return self.dropout(x + self.pe[:, x.size(1)])

    def _init_pos_encoding(self, device: torch.device) -> Tensor:
        position = torch.arange(self.max_len, dtype=torch.float, device=device).unsqueeze(1)
        frequencies = torch.exp(torch.arange(0, self.dim, 2, device=device).float() * (-math.log(10000.0) / self.dim))
        table = torch.zeros(self.max_len, self.dim, device=device)
        table[:, 0::2] = torch.sin(position * frequencies)
        table[:, 1::2] = torch.cos(position * frequencies)
        return table.unsqueeze(0)


class Dictionary:
    """Word <-> index, indices in order of first appearance."""

    def __init__(self) -> None:
        self.word2idx: Dict[str, int] = {}
        self.idx2word: List[str] = []

    def add_word(self, word: str) -> int:
        index = self.word2idx.get(word)
        if index is None:
            index = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return index

    def __len__(self) -> int:
        return len(self.idx2word)


def _tokenize_lines(lines: List[str]) -> Tuple[Tensor, Dictionary]:
    dictionary = Dictionary()
    ids = [dictionary.add_word(word) for line in lines for word in line.split() + ["<eos>"]]
    return torch.tensor(ids, dtype=torch.int64), dictionary


def tokenize(path: Path) -> Tuple[Tensor, Dictionary]:
    """The file's words (whitespace-separated, `<eos>` closing each line) as one int64 tensor of indices, and the
    dictionary that maps them."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenize: no such file {path}")
    with open(path, encoding="utf8") as f:
        return _tokenize_lines(f.readlines())


def synthetic_corpus(num_lines: int = 2000, vocab: int = 2000, seed: int = 0) -> List[str]:
    """A deterministic stand-in for WikiText-2 (not real text): WikiText-style lines (` = Heading = ` and sentences
    ending in ` . `) of made-up words with Zipf-like frequencies and a preferred next word, so a language model has
    something to learn. Uses its own random generator; torch's and Python's global RNGs are untouched."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "gu", "he", "ji", "bo", "fe"]
    words: List[str] = []
    seen = set()
    while len(words) < vocab:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(vocab)))  # Zipf-like frequencies

    def frequent_word() -> int:
        return rng.choices(range(vocab), cum_weights=cumulative)[0]

    successors = [rng.choices(range(vocab), cum_weights=cumulative, k=4) for _ in range(vocab)]
    lines = []
    for i in range(num_lines):
        if i % 40 == 0:
            lines.append(f" = {' '.join(rng.choices(words[:200], k=rng.randint(1, 3)))} = ")
            continue
        sentences = []
        for _ in range(rng.randint(1, 3)):
            current = frequent_word()
            sentence = [words[current]]
            for _ in range(rng.randint(4, 18)):
                current = rng.choice(successors[current]) if rng.random() < 0.7 else frequent_word()
                sentence.append(words[current])
            sentences.append(" ".join(sentence) + " .")
        lines.append(" " + " ".join(sentences) + " ")
    return lines


class WikiText2(Dataset):
    """WikiText-2's training text as (inputs, targets) blocks of `block_size` token ids, targets shifted by one.

    Reads `<data_dir>/wikitext-2.txt`. fastlight never downloads: when that file is missing, `download=True` (the
    default) uses a small synthetic corpus instead and warns (`self.synthetic` is then True); `download=False` raises
    FileNotFoundError. Put the real file there (from `_WIKITEXT2_SOURCE`) for real text.
    """

    def __init__(self, data_dir: Union[Path, str] = Path("./data"), block_size: int = 35, download: bool = True) -> None:
        super().__init__()
        self.path = Path(data_dir) / "wikitext-2.txt"
        self.block_size = block_size
        self.synthetic = not self.path.is_file()
        if not self.synthetic:
            self.data, self.dictionary = tokenize(self.path)
            return
        if not download:
            raise FileNotFoundError(
                f"WikiText2: {self.path} not found and download=False. fastlight does not download: save WikiText-2's "
                f"training text ({_WIKITEXT2_SOURCE}) as {self.path}, or pass download=True to use a synthetic corpus."
            )
        warnings.warn(
            f"WikiText2: {self.path} not found; using a small SYNTHETIC corpus (made-up words, not WikiText-2). "
            f"fastlight never downloads: save the real training text ({_WIKITEXT2_SOURCE}) as {self.path} to use it.",
            UserWarning,
            stacklevel=2,
        )
        self.data, self.dictionary = _tokenize_lines(synthetic_corpus())

    @property
    def vocab_size(self) -> int:
        return len(self.dictionary)

    def __len__(self) -> int:
        return len(self.data) // self.block_size - 1

    def __getitem__(self, index: int) -> Tuple[Tensor, Tensor]:
        start = index * self.block_size
        inputs = self.data[start : start + self.block_size]
        target = self.data[start + 1 : start + self.block_size + 1]
        return inputs, target

    @staticmethod
    def download(destination: Path) -> None:
        """Lightning fetches the file here; fastlight never touches the network. Does nothing when `destination`
        exists, else raises with where to get the file."""
        if Path(destination).is_file():
            return
        raise RuntimeError(
            f"fastlight does not download WikiText-2: save {_WIKITEXT2_SOURCE} as {destination} (or construct "
            "WikiText2(download=True) without the file to use a synthetic corpus)."
        )


class LightningTransformer(LightningModule):
    """The demo Transformer as a LightningModule: NLL loss on WikiText2, SGD(lr=0.1)."""

    def __init__(self, vocab_size: int = 33278) -> None:
        super().__init__()
        self.model = Transformer(vocab_size=vocab_size)

    def forward(self, inputs: Tensor, target: Tensor) -> Tensor:
        return self.model(inputs, target)

    def training_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, target = batch
        return F.nll_loss(self(inputs, target), target.view(-1))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=0.1)

    def prepare_data(self) -> None:
        WikiText2(download=True)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(WikiText2())
