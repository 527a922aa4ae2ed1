"""MNIST as a LightningDataModule (Lightning's `lightning.pytorch.demos.mnist_datamodule` names and behaviour), offline.

Lightning downloads MNIST when it is missing; fastlight never touches the network. The data is looked up under
`data_dir`, in this order:

1. torchvision's layout (`<data_dir>/MNIST/raw/*-ubyte`, unpacked as torchvision leaves them), read with `torchvision.datasets.MNIST`;
2. Lightning's preprocessed files (`<data_dir>/MNIST/complete/training.pt` and `test.pt`), read by `_MNIST`.

When neither is there, a clear error says where the files go. `synthetic=True` (or the environment variable
`FASTLIGHT_MNIST_SYNTHETIC=1`) uses `SyntheticMNIST` instead: MNIST-shaped (60000 + 10000 images of 28x28 uint8,
10 classes), deterministic and learnable, but not MNIST; a warning says so.
"""
import functools
import os
import warnings
from typing import Any, Callable, Optional, Sized, Tuple, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, random_split

from fastlight.core.datamodule import LightningDataModule

_DATASETS_PATH = "./data"
_SYNTHETIC_ENV = "FASTLIGHT_MNIST_SYNTHETIC"


def _torchvision_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


class _MNIST(Dataset):
    """MNIST from Lightning's preprocessed files `<root>/MNIST/complete/{training,test}.pt` (each a saved
    `(images uint8 [N, 28, 28], labels int64 [N])` tuple). Items are `(float image [1, 28, 28], int label)`,
    the raw 0-255 values standardized with `normalize=(mean, std)` (None: left as they are)."""

    TRAIN_FILE_NAME = "training.pt"
    TEST_FILE_NAME = "test.pt"
    cache_folder_name = "complete"

    def __init__(
        self, root: str, train: bool = True, normalize: tuple = (0.1307, 0.3081), download: bool = True, **kwargs: Any
    ) -> None:
        super().__init__()
        self.root = root
        self.train = train
        self.normalize = normalize
        self.prepare_data(download)
        name = self.TRAIN_FILE_NAME if train else self.TEST_FILE_NAME
        self.data, self.targets = self._try_load(os.path.join(self.cached_folder_path, name))

    def __getitem__(self, idx: int) -> Tuple[Tensor, int]:
        img = self.data[idx].float().unsqueeze(0)
        if self.normalize is not None and len(self.normalize) == 2:
            img = self.normalize_tensor(img, *self.normalize)
        return img, int(self.targets[idx])

    def __len__(self) -> int:
        return len(self.data)

    @property
    def cached_folder_path(self) -> str:
        return os.path.join(self.root, "MNIST", self.cache_folder_name)

    def _check_exists(self, data_folder: str) -> bool:
        return all(os.path.isfile(os.path.join(data_folder, n)) for n in (self.TRAIN_FILE_NAME, self.TEST_FILE_NAME))

    def prepare_data(self, download: bool = True) -> None:
        """Checks the files are there (`download` is accepted for compatibility: fastlight never downloads)."""
        if not self._check_exists(self.cached_folder_path):
            raise RuntimeError(
                f"Dataset not found: {self.cached_folder_path} needs {self.TRAIN_FILE_NAME} and {self.TEST_FILE_NAME}. "
                "fastlight does not download MNIST; see fastlight.demos.mnist_datamodule for the layouts it reads."
            )

    @staticmethod
    def _try_load(path_data: str, trials: int = 30, delta: float = 1.0) -> Tuple[Tensor, Tensor]:
        if not os.path.isfile(path_data):
            raise FileNotFoundError(f"missing file: {path_data}")
        images, labels = torch.load(path_data, weights_only=True)
        return images, labels

    @staticmethod
    def normalize_tensor(tensor: Tensor, mean: Union[int, float] = 0.0, std: Union[int, float] = 1.0) -> Tensor:
        mean_t = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
        std_t = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
        return tensor.sub(mean_t).div(std_t)


@functools.lru_cache(maxsize=4)
def _synthetic_split(train: bool, seed: int) -> Tuple[Tensor, Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]): per class a fixed blocky 'glyph' plus per-image noise."""
    gen = torch.Generator().manual_seed(seed)
    glyphs = (torch.rand(10, 7, 7, generator=gen) < 0.35).to(torch.int16) * 200  # one 7x7 pattern per class
    glyphs = glyphs.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)  # 28x28
    gen.manual_seed(seed + (1 if train else 2))
    count = 60000 if train else 10000
    labels = torch.randint(0, 10, (count,), generator=gen)
    images = torch.empty(count, 28, 28, dtype=torch.uint8)
    for start in range(0, count, 10000):  # in chunks: bounded temporary memory
        stop = min(start + 10000, count)
        noise = torch.randint(0, 56, (stop - start, 28, 28), generator=gen, dtype=torch.int16)
        images[start:stop] = (glyphs[labels[start:stop]] + noise).clamp_(0, 255).to(torch.uint8)
    return images, labels


class SyntheticMNIST(Dataset):
    """An MNIST-shaped stand-in (NOT MNIST): 60000 train / 10000 test images of 28x28 uint8 in 10 classes, the same
    every time for a given `seed`. Items are as torchvision's MNIST gives them: `(PIL image, int label)` with
    `transform` / `target_transform` applied (a uint8 tensor [28, 28] when PIL is not installed)."""

    def __init__(
        self,
        root: str = _DATASETS_PATH,
        train: bool = True,
        transform: Optional[Callable] = None,
        target_transform: Optional[Callable] = None,
        download: bool = False,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.root = root
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        self.data, self.targets = _synthetic_split(train, seed)

    def __getitem__(self, idx: int) -> Tuple[Any, Any]:
        img: Any = self.data[idx]
        try:
            from PIL import Image

            img = Image.fromarray(img.numpy(), mode="L")
        except ImportError:
            pass
        target: Any = int(self.targets[idx])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)


def _torchvision_mnist_present(root: str) -> bool:
    raw = os.path.join(root, "MNIST", "raw")
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all(os.path.isfile(os.path.join(raw, n)) for n in names)  # torchvision reads the unpacked files


def _synthetic_requested(synthetic: Optional[bool]) -> bool:
    if synthetic is not None:
        return synthetic
    return os.getenv(_SYNTHETIC_ENV, "0").lower() not in ("", "0", "false", "no")


def MNIST(*args: Any, synthetic: Optional[bool] = None, **kwargs: Any) -> Dataset:
    """The MNIST dataset found under `root` (the first argument): torchvision's files, else Lightning's `.pt` files;
    `synthetic=True` (or FASTLIGHT_MNIST_SYNTHETIC=1) gives SyntheticMNIST. Nothing is downloaded."""
    root = args[0] if args else kwargs.get("root", _DATASETS_PATH)
    if _synthetic_requested(synthetic):
        warnings.warn(
            "MNIST: using SyntheticMNIST, a synthetic MNIST-shaped stand-in (not the real digits).", UserWarning, stacklevel=2
        )
        return SyntheticMNIST(*args, **kwargs)
    use_torchvision = not os.getenv("PL_USE_MOCKED_MNIST") and _torchvision_available()
    if use_torchvision and _torchvision_mnist_present(str(root)):
        from torchvision.datasets import MNIST as TorchvisionMNIST

        kwargs["download"] = False
        return TorchvisionMNIST(*args, **kwargs)
    complete = os.path.join(str(root), "MNIST", _MNIST.cache_folder_name)
    if os.path.isfile(os.path.join(complete, _MNIST.TRAIN_FILE_NAME)) and os.path.isfile(
        os.path.join(complete, _MNIST.TEST_FILE_NAME)
    ):
        return _MNIST(*args, **kwargs)
    raise RuntimeError(
        f"MNIST not found under {os.path.abspath(str(root))!r} and fastlight does not download it. Put torchvision's "
        f"files in {os.path.join(str(root), 'MNIST', 'raw')} (e.g. run torchvision.datasets.MNIST(root, download=True) "
        f"where there is internet and copy them), or Lightning's training.pt/test.pt in {complete}; or pass "
        f"synthetic=True (MNISTDataModule(synthetic=True), or set {_SYNTHETIC_ENV}=1) for a synthetic stand-in."
    )


class MNISTDataModule(LightningDataModule):
    """MNIST train / val / test: `val_split` training images (a fixed random split) form the validation set; the
    test split is MNIST's own. Loaders use `batch_size`, `num_workers`, drop_last and pinned memory.

    Args:
        data_dir: where the data is (see the module docstring for the layouts).
        val_split: how many training images go to the validation set.
        num_workers: DataLoader workers.
        normalize: normalize images to mean 0.5 / std 0.5 after ToTensor (needs torchvision).
        seed: kept as `self.seed` (as in Lightning, the split itself always uses seed 42).
        batch_size: the loaders' batch size.
        synthetic: use SyntheticMNIST instead of files (None: the FASTLIGHT_MNIST_SYNTHETIC environment variable).
    """

    name = "mnist"

    def __init__(
        self,
        data_dir: str = _DATASETS_PATH,
        val_split: int = 5000,
        num_workers: int = 16,
        normalize: bool = False,
        seed: int = 42,
        batch_size: int = 32,
        synthetic: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if num_workers and os.name == "nt":  # worker processes on Windows re-import the main script
            warnings.warn(f"You have requested num_workers={num_workers} on Windows, but currently recommended is 0, so we set it for you")
            num_workers = 0
        self.data_dir = data_dir
        self.val_split = val_split
        self.num_workers = num_workers
        self.normalize = normalize
        self.seed = seed
        self.batch_size = batch_size
        self.synthetic = synthetic

    @property
    def num_classes(self) -> int:
        return 10

    def prepare_data(self) -> None:
        """Checks that the data is there (fastlight does not download)."""
        MNIST(self.data_dir, train=True, download=True, synthetic=self.synthetic)
        MNIST(self.data_dir, train=False, download=True, synthetic=self.synthetic)

    def setup(self, stage: str) -> None:
        """Split the training set into train and validation."""
        extra = {"transform": self.default_transforms} if self.default_transforms else {}
        dataset = MNIST(self.data_dir, train=True, download=False, synthetic=self.synthetic, **extra)
        assert isinstance(dataset, Sized)
        total = len(dataset)
        if not 0 <= self.val_split < total:
            raise ValueError(f"MNISTDataModule: val_split={self.val_split} must be in [0, {total}) (training images)")
        self.dataset_train, self.dataset_val = random_split(
            dataset, [total - self.val_split, self.val_split], generator=torch.Generator().manual_seed(42)
        )

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=True,
            pin_memory=True,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset_train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset_val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        extra = {"transform": self.default_transforms} if self.default_transforms else {}
        dataset = MNIST(self.data_dir, train=False, download=False, synthetic=self.synthetic, **extra)
        return self._loader(dataset, shuffle=False)

    @property
    def default_transforms(self) -> Optional[Callable]:
        if not _torchvision_available():
            return None
        from torchvision import transforms

        if self.normalize:
            return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=(0.5,), std=(0.5,))])
        return transforms.ToTensor()
