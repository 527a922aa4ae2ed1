"""In-process tests of fastlight.strategies: strategy resolution, environment detection, sampler injection
(compared with pytorch_lightning's own functions), single-device behaviour and clear errors."""
import os
import socket
import warnings
from datetime import timedelta

import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler
from torch.utils.data import WeightedRandomSampler

from fastlight.strategies import (
    DDPStrategy,
    LocalEnvironment,
    SLURMEnvironment,
    SingleDeviceStrategy,
    TorchrunEnvironment,
    detect_environment,
    process_dataloader,
    resolve_strategy,
    set_sampler_epoch,
)
from fastlight.strategies.environments import slurm_root_address
from fastlight.strategies.launchers import MultiProcessingLauncher, SubprocessScriptLauncher

_LAUNCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "GROUP_RANK",
                "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED")


@pytest.fixture(autouse=True)
def clean_launch_env(monkeypatch):
    for k in list(os.environ):
        if k in _LAUNCH_VARS or k.startswith("SLURM_"):
            monkeypatch.delenv(k)


# ---------------------------------------------------------------------------------------------------------- resolve
def test_auto_on_one_cpu_is_single_device_without_launcher():
    s = resolve_strategy("auto", "cpu", "auto", 1)
    assert isinstance(s, SingleDeviceStrategy) and s.root_device == torch.device("cpu")
    assert s.launcher is None and s.world_size == 1 and s.is_global_zero
    t = torch.tensor([3.0])
    assert s.reduce(t) is t and s.all_gather(t) is t and s.broadcast("x") == "x"


@pytest.mark.parametrize("devices, num_nodes", [(2, 1), (1, 2), ("3", 1)])
def test_auto_with_several_devices_or_nodes_is_ddp_relaunching_the_script(devices, num_nodes):
    s = resolve_strategy("auto", "cpu", devices, num_nodes)
    assert isinstance(s, DDPStrategy) and s.start_method == "popen"
    assert isinstance(s.launcher, SubprocessScriptLauncher) and s.launcher.launches_processes
    assert s.num_processes == int(devices) and s.num_nodes == num_nodes
    assert s.distributed_sampler_kwargs == {"num_replicas": int(devices) * num_nodes, "rank": 0}
    assert s.process_group_backend == "gloo" and s.root_device == torch.device("cpu")


@pytest.mark.parametrize(
    "name, start_method, find_unused",
    [
        ("ddp", "popen", False),
        ("ddp_spawn", "spawn", False),
        ("ddp_find_unused_parameters_true", "popen", True),
        ("ddp_spawn_find_unused_parameters_true", "spawn", True),
        ("ddp_find_unused_parameters_false", "popen", False),
        ("ddp_fork", "fork", False),
    ],
)
def test_ddp_names(name, start_method, find_unused):
    s = resolve_strategy(name, "cpu", 2, 1)
    assert isinstance(s, DDPStrategy)
    assert s.start_method == start_method and s.find_unused_parameters is find_unused
    assert s._ddp_kwargs["gradient_as_bucket_view"] is True
    launcher_type = SubprocessScriptLauncher if start_method == "popen" else MultiProcessingLauncher
    assert isinstance(s.launcher, launcher_type)


def test_a_strategy_instance_is_completed_from_the_flags():
    mine = DDPStrategy(find_unused_parameters=True, timeout=timedelta(seconds=60))
    s = resolve_strategy(mine, "cpu", 2, 1)
    assert s is mine and s.num_processes == 2 and isinstance(s.cluster_environment, LocalEnvironment)
    assert s.find_unused_parameters and s.timeout == timedelta(seconds=60)


@pytest.mark.parametrize("bad", ["dpp", "fsdp_native", "horovod"])  # deepspeed: tests/test_lightning_messages.py
def test_unknown_strategy_names_the_choices(bad):
    with pytest.raises(ValueError, match=rf"strategy='{bad}' is not supported.*'ddp_spawn'"):
        resolve_strategy(bad, "cpu", 1, 1)


@pytest.mark.parametrize("devices", [0, -1, "x", 1.5, True])
def test_bad_cpu_device_counts(devices):
    with pytest.raises(ValueError, match="devices="):
        resolve_strategy("ddp", "cpu", devices, 1)


def test_bad_accelerator_and_num_nodes():
    with pytest.raises(ValueError, match="accelerator='tpu'"):
        resolve_strategy("auto", "tpu", 1, 1)
    with pytest.raises(ValueError, match="num_nodes=0"):
        resolve_strategy("auto", "cpu", 1, 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA device is available"):
        resolve_strategy("ddp", "gpu", 2, 1)


def test_more_gpus_than_exist_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"devices=4 asks for CUDA device\(s\) \[2, 3\] but only 2"):
        resolve_strategy("ddp", "cuda", 4, 1)
    with pytest.raises(ValueError, match=r"\[5\] but only 2"):
        resolve_strategy("ddp", "gpu", [0, 5], 1)
    s = resolve_strategy("auto", "auto", "auto", 1)
    assert isinstance(s, DDPStrategy) and s.parallel_devices == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert s.process_group_backend == "nccl"
    s = resolve_strategy("auto", "gpu", "1", 1)
    assert isinstance(s, SingleDeviceStrategy) and s.root_device == torch.device("cuda", 0)
    s = resolve_strategy("ddp", "gpu", "1,0", 1)
    assert s.parallel_devices == [torch.device("cuda", 1), torch.device("cuda", 0)]


# ---------------------------------------------------------------------------------------------------- environments
def test_plain_script_environment(monkeypatch):
    env = detect_environment()
    assert isinstance(env, LocalEnvironment) and not env.creates_processes_externally
    port = env.main_port
    assert env.main_port == port and env.main_address == "127.0.0.1"  # a free port, picked once
    monkeypatch.setenv("MASTER_PORT", "23456")
    assert LocalEnvironment().main_port == 23456


def test_relaunched_rank_derives_global_rank_from_node_rank_and_devices(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("NODE_RANK", "1")
    s = resolve_strategy("ddp", "cpu", 2, 2)
    assert isinstance(s.cluster_environment, LocalEnvironment) and not s.launcher.launches_processes
    assert (s.global_rank, s.local_rank, s.node_rank, s.world_size) == (3, 1, 1, 4)
    assert not s.is_global_zero
    from fastlight.utilities import rank_zero_only

    assert rank_zero_only.rank == 3
    rank_zero_only.rank = 0


def test_torchrun_environment(monkeypatch):
    for k, v in dict(RANK="3", LOCAL_RANK="1", WORLD_SIZE="4", MASTER_ADDR="10.0.0.1", MASTER_PORT="1234",
                     GROUP_RANK="1").items():
        monkeypatch.setenv(k, v)
    s = resolve_strategy("ddp", "cpu", 2, 2)
    assert isinstance(s.cluster_environment, TorchrunEnvironment)
    assert (s.global_rank, s.local_rank, s.node_rank, s.world_size) == (3, 1, 1, 4)
    assert (s.cluster_environment.main_address, s.cluster_environment.main_port) == ("10.0.0.1", 1234)
    assert not s.launcher.launches_processes
    with pytest.raises(ValueError, match=r"devices=2, num_nodes=1\) asks for 2 processes.*WORLD_SIZE=4"):
        resolve_strategy("ddp", "cpu", 2, 1).launcher.launch(lambda: None)
    from fastlight.utilities import rank_zero_only

    rank_zero_only.rank = 0


def test_slurm_environment(monkeypatch):
    for k, v in dict(SLURM_NTASKS="4", SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="2", SLURM_PROCID="2",
                     SLURM_LOCALID="0", SLURM_NODEID="1", SLURM_NODELIST="gpu-node[017-018]",
                     SLURM_JOB_ID="987654", SLURM_JOB_NAME="train").items():
        monkeypatch.setenv(k, v)
    s = resolve_strategy("ddp", "cpu", 2, 2)
    env = s.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.creates_processes_externally
    assert (s.global_rank, s.local_rank, s.node_rank, s.world_size) == (2, 0, 1, 4)
    assert env.main_address == "gpu-node017" and env.main_port == 7654 + 15000
    s.launcher.cluster_environment.validate_settings(2, 2)
    with pytest.raises(ValueError, match="--ntasks-per-node=2"):
        env.validate_settings(4, 1)
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # an interactive shell inside the allocation
    assert isinstance(detect_environment(), LocalEnvironment)
    from fastlight.utilities import rank_zero_only

    rank_zero_only.rank = 0


@pytest.mark.parametrize(
    "nodelist", ["host0 host1", "host0,host1,host3", "host[5-9]", "host[5,7-9]", "host[05-07],other[1-2]",
                 "alone", "host[3]", "a-b[10-11]"],
)
def test_slurm_master_address_matches_lightning(nodelist):
    from lightning_fabric.plugins.environments.slurm import SLURMEnvironment as PLSlurm

    assert slurm_root_address(nodelist) == PLSlurm.resolve_root_node_address(nodelist)


# ---------------------------------------------------------------------------------------------- sampler injection
class IndexDataset(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


class MyBatchSampler(BatchSampler):
    pass


def _loaders():
    ds = IndexDataset(23)
    return {
        "sequential": lambda: DataLoader(ds, batch_size=4),
        "shuffled": lambda: DataLoader(ds, batch_size=4, shuffle=True),
        "drop_last": lambda: DataLoader(ds, batch_size=4, shuffle=True, drop_last=True),
        "weighted": lambda: DataLoader(
            ds, batch_size=3,
            sampler=WeightedRandomSampler(torch.linspace(1, 2, 23), 23, generator=torch.Generator().manual_seed(1)),
        ),
        "custom_batch_sampler": lambda: DataLoader(ds, batch_sampler=MyBatchSampler(SequentialSampler(ds), 5, False)),
    }


_LOADERS = _loaders()


@pytest.fixture(scope="module")
def lightning_trainers():
    """Lightning Trainers configured for 2-rank DDP, one per rank (no process is launched)."""
    import pytorch_lightning as pl

    trainers = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rank in range(2):
            t = pl.Trainer(strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_progress_bar=False,
                           enable_checkpointing=False, enable_model_summary=False)
            t.strategy.cluster_environment.set_global_rank(rank)
            trainers.append(t)
    from fastlight.utilities import rank_zero_only

    rank_zero_only.rank = 0
    return trainers


def _batches(loader, epoch):
    set_sampler_epoch(loader, epoch)
    return [b.tolist() for b in loader]


@pytest.mark.parametrize("stage", ["train", "val", "predict"])
@pytest.mark.parametrize("kind", list(_LOADERS))
def test_sampler_injection_shards_like_lightning(lightning_trainers, monkeypatch, stage, kind):
    from pytorch_lightning.trainer.connectors.data_connector import _process_dataloader
    from pytorch_lightning.trainer.states import RunningStage, TrainerFn

    monkeypatch.setenv("PL_GLOBAL_SEED", "42")
    pl_stage = {"train": RunningStage.TRAINING, "val": RunningStage.VALIDATING, "predict": RunningStage.PREDICTING}
    pl_fn = {"train": TrainerFn.FITTING, "val": TrainerFn.FITTING, "predict": TrainerFn.PREDICTING}
    ours_all, theirs_all = [], []
    for rank, trainer in enumerate(lightning_trainers):
        trainer.state.fn = pl_fn[stage]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = _process_dataloader(trainer, pl_fn[stage], pl_stage[stage], _LOADERS[kind]())
        ours = process_dataloader(_LOADERS[kind](), stage, {"num_replicas": 2, "rank": rank})
        for o_s, t_s in ((ours.sampler, theirs.sampler), (ours.batch_sampler, theirs.batch_sampler)):
            o_s, t_s = getattr(o_s, "_batch_sampler", o_s), getattr(t_s, "_batch_sampler", t_s)
            assert type(o_s).__name__ == type(t_s).__name__
            assert type(getattr(o_s, "sampler", None)).__name__ == type(getattr(t_s, "sampler", None)).__name__
        assert ours.drop_last == theirs.drop_last
        for epoch in range(2):
            # same seed for the custom sampler's own generator in both runs
            for dl in (ours, theirs):
                for holder in (dl.sampler, getattr(dl.batch_sampler, "sampler", None)):
                    wrapped = getattr(holder, "dataset", None)
                    inner = getattr(wrapped, "sampler", getattr(wrapped, "_sampler", None))
                    if isinstance(inner, WeightedRandomSampler):
                        inner.generator.manual_seed(epoch)
            # a wrapped RandomSampler (predict) draws from the global generator: same state for both
            torch.manual_seed(100 + epoch)
            o = _batches(ours, epoch)
            torch.manual_seed(100 + epoch)
            t = _batches(theirs, epoch)
            assert o == t, f"rank {rank} epoch {epoch}"
            ours_all.append(o)
            theirs_all.append(t)
    assert ours_all == theirs_all


def test_train_loader_is_reshuffled_every_epoch_and_split_across_ranks():
    shards = [process_dataloader(DataLoader(IndexDataset(20), batch_size=5), "train", {"num_replicas": 2, "rank": r})
              for r in range(2)]
    e0 = [i for dl in shards for b in _batches(dl, 0) for i in b]
    e1 = [i for dl in shards for b in _batches(dl, 1) for i in b]
    assert sorted(e0) == sorted(e1) == list(range(20)) and e0 != e1


def test_loaders_left_alone():
    dl = DataLoader(IndexDataset(8), batch_size=2)
    assert process_dataloader(dl, "train", None) is dl  # single process, or use_distributed_sampler=False

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(4))

    it = DataLoader(Stream(), batch_size=2)
    assert process_dataloader(it, "train", {"num_replicas": 2, "rank": 0}) is it
    plain = [[0, 1]]
    assert process_dataloader(plain, "train", {"num_replicas": 2, "rank": 0}) is plain
    s = resolve_strategy("ddp", "cpu", 2, 1)
    assert s.process_dataloader(dl, "train", use_distributed_sampler=False) is dl
    assert s.process_dataloader(dl, "val").sampler.shuffle is False
    with pytest.raises(ValueError, match="unknown stage 'training_step'"):
        process_dataloader(dl, "training_step", {"num_replicas": 2, "rank": 0})


def test_loader_subclass_without_its_init_args_as_attributes_is_a_clear_error():
    class MyLoader(DataLoader):
        def __init__(self, data, bs):
            super().__init__(data, batch_size=bs)

    with pytest.raises(TypeError, match=r"MyLoader.*\['bs', 'data'\].*use_distributed_sampler=False"):
        process_dataloader(MyLoader(IndexDataset(8), 2), "train", {"num_replicas": 2, "rank": 0})


def test_unsized_custom_sampler_is_a_clear_error():
    class Endless(torch.utils.data.Sampler):
        def __iter__(self):
            while True:
                yield 0

    with pytest.raises(TypeError, match="no finite __len__"):
        process_dataloader(DataLoader(IndexDataset(8), sampler=Endless()), "train", {"num_replicas": 2, "rank": 0})


# ---------------------------------------------------------------------------------------- one-rank process group
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use_and_one_rank_ddp_in_process(monkeypatch):
    """World size 1 in this process: port-in-use error, then DDP wrapping, sync_batchnorm, collectives."""
    import torch.distributed as dist

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setenv("MASTER_PORT", str(busy.getsockname()[1]))
        s = resolve_strategy("ddp", "cpu", 1, 1, sync_batchnorm=True)
        with pytest.raises(RuntimeError, match="is already in use"):
            s.setup_environment()
    assert not dist.is_initialized()
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    s = resolve_strategy("ddp", "cpu", 1, 1, sync_batchnorm=True)
    s.setup_environment()
    try:
        assert dist.get_backend() == "gloo" and dist.get_world_size() == 1
        module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        with pytest.raises(ValueError, match="sync_batchnorm=True needs CUDA"):
            s.setup_module(module)
        s.sync_batchnorm = False
        wrapped = s.setup_module(module)
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
        assert wrapped.gradient_as_bucket_view and not wrapped.find_unused_parameters and not wrapped.static_graph
        with s.block_backward_sync():
            assert not wrapped.require_backward_grad_sync
        assert wrapped.require_backward_grad_sync
        t = torch.tensor([2.0, 3.0])
        assert torch.equal(s.reduce(t, reduce_op="max"), t) and s.all_gather(t).shape == (1, 2)
        with pytest.raises(ValueError, match="reduce_op='median'"):
            s.reduce(t, reduce_op="median")
        assert s.broadcast({"a": 1}) == {"a": 1}
        s.barrier("x")
        s.teardown()
        assert s.model is s.module
    finally:
        dist.destroy_process_group()


def test_unreachable_master_gives_a_clear_error_after_the_connect_timeout(monkeypatch):
    import time

    import torch.distributed as dist

    monkeypatch.setenv("LOCAL_RANK", "1")  # rank 1 of 2: it connects to a master that is not there
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("FASTLIGHT_CONNECT_TIMEOUT", "1")
    s = resolve_strategy("ddp", "cpu", 2, 1)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"rank 1 could not reach the master at MASTER_ADDR=127.0.0.1 MASTER_PORT="):
        s.setup_environment()
    assert time.monotonic() - start < 10 and not dist.is_initialized()
    from fastlight.utilities import rank_zero_only

    rank_zero_only.rank = 0


def test_ddp_spawn_refuses_without_main_guard(monkeypatch):
    import multiprocessing

    s = resolve_strategy("ddp_spawn", "cpu", 2, 1)
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match="if __name__ == '__main__'"):
        s.launcher.launch(print)


def test_checkpoint_written_by_rank_zero_only_and_loadable(tmp_path, monkeypatch):
    s0 = resolve_strategy("auto", "cpu", 1, 1)
    module = nn.Linear(2, 3)
    s0.setup_module(module)
    ckpt = {"state_dict": s0.module_state_dict(), "epoch": 1}
    s0.save_checkpoint(ckpt, tmp_path / "sub" / "a.ckpt")
    assert torch.equal(s0.load_checkpoint(tmp_path / "sub" / "a.ckpt")["state_dict"]["weight"], module.weight)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.ckpt"]  # no temporary file left
    monkeypatch.setenv("LOCAL_RANK", "1")
    s1 = resolve_strategy("ddp", "cpu", 2, 1)
    s1.save_checkpoint(ckpt, tmp_path / "b.ckpt")
    assert not (tmp_path / "b.ckpt").exists()
    from fastlight.utilities import rank_zero_only

    rank_zero_only.rank = 0


# --------------------------------------------------------------------------------------------- launcher interface
def _interrupted_fit_with_mocked_launcher(pl_mod, launcher_cls, tmp_path):
    """Lightning's path: a KeyboardInterrupt in fit with a script launcher set on the strategy."""
    from unittest.mock import Mock

    class Interrupt(pl_mod.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            raise KeyboardInterrupt

    class Model(pl_mod.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch).sum()

        def train_dataloader(self):
            return DataLoader(torch.randn(8, 4), batch_size=4)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl_mod.Trainer(callbacks=[Interrupt()], barebones=True, default_root_dir=tmp_path, max_epochs=1)
    calls = []
    launcher = Mock(spec=launcher_cls)

    def launch(function, *args, trainer, **kwargs):
        calls.append(trainer)
        return function(*args, **kwargs)

    launcher.launch = launch
    trainer.strategy._launcher = launcher
    with pytest.raises(SystemExit) as exc_info:
        trainer.fit(Model())
    return exc_info.value.args, calls == [trainer], launcher.kill.call_args_list, trainer.state.status


def test_keyboard_interrupt_with_a_script_launcher_kills_its_processes_and_exits_1_as_lightning(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher as PLLauncher

    from fastlight.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    import fastlight

    ours = _interrupted_fit_with_mocked_launcher(fastlight, _SubprocessScriptLauncher, tmp_path / "fl")
    theirs = _interrupted_fit_with_mocked_launcher(pl, PLLauncher, tmp_path / "pl")
    assert ours[:3] == theirs[:3]
    assert ours[0] == (1,) and ours[1] and [c.args for c in ours[2]] == [(9,)]  # SIGKILL, through trainer=
    assert ours[3] == theirs[3].value == "interrupted"


def test_a_custom_launcher_subclassing_lightnings_base_is_called_with_the_trainer(tmp_path):
    from fastlight import LightningModule, Trainer
    from fastlight.strategies.launchers import _Launcher

    class CountingLauncher(_Launcher):
        is_interactive_compatible = True

        def __init__(self):
            self.trainers = []

        def launch(self, function, *args, trainer=None, **kwargs):
            self.trainers.append(trainer)
            return function(*args, **kwargs)

        def kill(self, signum):
            pass

    class Model(LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch).sum()

        def validation_step(self, batch, batch_idx):
            self.log("v", self.layer(batch).sum())

        def train_dataloader(self):
            return DataLoader(torch.randn(8, 4), batch_size=4)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    with pytest.raises(TypeError, match="abstract"):
        type("Incomplete", (_Launcher,), {})()
    trainer = Trainer(barebones=True, default_root_dir=tmp_path, max_epochs=1)
    launcher = CountingLauncher()
    trainer.strategy._launcher = launcher
    trainer.fit(Model())
    trainer.validate(Model(), dataloaders=DataLoader(torch.randn(4, 4), batch_size=4), verbose=False)
    assert launcher.trainers == [trainer, trainer] and trainer.global_step == 2


@pytest.mark.parametrize("size, replicas, shuffle", [(10, 3, False), (10, 3, True), (7, 2, True), (5, 4, False)])
def test_unrepeated_distributed_sampler_splits_as_lightnings(size, replicas, shuffle):
    """`overrides.distributed.UnrepeatedDistributedSampler` (what evaluation/prediction loaders of a distributed run
    get): every sample once over the ranks, the same split and order as Lightning's, for each epoch."""
    pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler as Theirs

    from fastlight.overrides.distributed import UnrepeatedDistributedSampler as Ours

    data = list(range(size))
    for epoch in (0, 3):
        seen = []
        for rank in range(replicas):
            ours = Ours(data, num_replicas=replicas, rank=rank, shuffle=shuffle)
            theirs = Theirs(data, num_replicas=replicas, rank=rank, shuffle=shuffle)
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
            seen += list(ours)
        assert sorted(seen) == data
