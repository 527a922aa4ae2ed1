"""Opt-in speed knobs: Trainer(channels_last=True) for conv nets, and a user's torch.compile'd module (the whole
LightningModule passed as `torch.compile(model)`, or a compiled submodule) training under the Trainer."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl


def _images(n=24):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g))


class ConvNet(fl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))
        self.input_formats = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.input_formats.append(x.is_contiguous(memory_format=torch.channels_last))
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.nn.functional.cross_entropy(self(batch[0]), batch[1]))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def _fit(tmp_path, model, **kw):
    torch.manual_seed(1)
    trainer = fl.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path), **kw)
    trainer.fit(model, DataLoader(_images(), batch_size=8, shuffle=True), DataLoader(_images(8), batch_size=4))
    return trainer


def test_channels_last_converts_the_module_and_the_batches(tmp_path):
    ref = ConvNet()
    _fit(tmp_path, ref)
    model = ConvNet()
    _fit(tmp_path, model, channels_last=True)
    conv = model.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert all(model.input_formats) and not any(ref.input_formats)
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # same values; conv kernels may sum in another order


def test_channels_last_flag_is_validated():
    with pytest.raises(ValueError, match="channels_last"):
        fl.Trainer(accelerator="cpu", channels_last=1)


def test_compiled_step_signature_is_read_through_the_wrapper():
    from fastlight.trainer.compiled import unwrap_compiled
    from fastlight.trainer.fit_loop import _takes_batch_idx

    class OneArg(ConvNet):
        def training_step(self, batch):
            return super().training_step(batch, 0)

    model = unwrap_compiled(torch.compile(OneArg()))
    assert not _takes_batch_idx(model.training_step)
    assert _takes_batch_idx(unwrap_compiled(torch.compile(ConvNet())).training_step)


def test_compiling_something_else_than_a_lightning_module_is_a_clear_error(tmp_path):
    trainer = fl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path))
    with pytest.raises(TypeError, match="LightningModule"):
        trainer.fit(torch.compile(torch.nn.Linear(2, 2)))


@pytest.mark.slow
def test_torch_compiled_module_trains_under_the_trainer(tmp_path):
    """trainer.fit(torch.compile(model)) and a compiled submodule: the same weights as eager (fp32 tolerance),
    validation and predict run through the compiled module too."""
    ref = ConvNet()
    _fit(tmp_path, ref)
    model = ConvNet()
    compiled = torch.compile(model)
    trainer = _fit(tmp_path, compiled)
    assert trainer.lightning_module is model
    assert "_torchdynamo_orig_callable" in dir(model.training_step) or hasattr(model.training_step, "__wrapped__")
    for a, b in zip(model.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    preds = trainer.predict(compiled, DataLoader(_images(8), batch_size=4))
    assert len(preds) == 2 and preds[0].shape == (4, 5)

    sub = ConvNet()
    sub.net = torch.compile(sub.net)
    _fit(tmp_path, sub)
    for a, b in zip(sub.net._orig_mod.state_dict().values(), ref.net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
