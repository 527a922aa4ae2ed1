"""What the optional-package loggers share: Lightning's import paths, no client import until a logger is made, a
clear error naming the package when it is missing; and the default logger saying when it falls back to CSV.

`no_network` (a fixture the client tests use) fails a test whose code tries to reach another machine."""
import socket
import subprocess
import sys
import warnings

import pytest

import fastlight
from fastlight.loggers import CSVLogger, TensorBoardLogger

CLIENTS = {  # logger: (module path under fastlight.loggers, client module, pip name, extra)
    "WandbLogger": ("wandb", "wandb", "wandb", "wandb"),
    "MLFlowLogger": ("mlflow", "mlflow", "mlflow", "mlflow"),
    "CometLogger": ("comet", "comet_ml", "comet-ml", "comet"),
    "NeptuneLogger": ("neptune", "neptune", "neptune", "neptune"),
}

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "", None}


@pytest.fixture
def no_network(monkeypatch):
    """Block (and record) connections and name lookups for anything but this machine; fail the test if any was
    tried, even when the library swallowed the error."""
    tried = []
    real_connect, real_connect_ex, real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def local(sock, address):
        if sock.family == getattr(socket, "AF_UNIX", None):
            return True
        host = address[0] if isinstance(address, tuple) else address
        return host in _LOCAL_HOSTS or str(host).startswith("127.")

    def connect(sock, address):
        if not local(sock, address):
            tried.append(("connect", address))
            raise OSError(f"test blocked a network connection to {address}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not local(sock, address):
            tried.append(("connect", address))
            return 111  # ECONNREFUSED
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS and not str(host).startswith("127."):
            tried.append(("getaddrinfo", host))
            raise socket.gaierror(f"test blocked a name lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield tried
    assert not tried, f"the test tried to reach the network: {tried}"


@pytest.mark.parametrize("cls_name", sorted(CLIENTS))
def test_logger_import_paths_match_lightning(cls_name):
    module_name = CLIENTS[cls_name][0]
    module = __import__(f"fastlight.loggers.{module_name}", fromlist=[cls_name])
    assert getattr(module, cls_name) is getattr(fastlight.loggers, cls_name)
    pl_loggers = pytest.importorskip("pytorch_lightning.loggers")
    assert hasattr(__import__(f"pytorch_lightning.loggers.{module_name}", fromlist=[cls_name]), cls_name)
    # Lightning 2.6.4+ keeps only pytorch_lightning.loggers.neptune (its class raises); 2.6.1 exported it here too
    assert hasattr(pl_loggers, cls_name) or cls_name == "NeptuneLogger"


def test_importing_loggers_imports_no_client_package():
    code = (
        "import sys, fastlight, fastlight.loggers\n"
        "from fastlight.loggers import WandbLogger, MLFlowLogger, CometLogger, NeptuneLogger\n"
        "print(sorted(m for m in ('wandb', 'mlflow', 'comet_ml', 'neptune', 'tensorboard') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("cls_name", sorted(CLIENTS))
def test_missing_client_package_error_names_package_and_pip_command(cls_name, monkeypatch):
    _, client, pip_name, extra = CLIENTS[cls_name]
    for name in list(sys.modules):
        if name == client or name.startswith(client + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, client, None)  # `import client` now raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError) as err:
        getattr(fastlight.loggers, cls_name)()
    message = str(err.value)
    assert cls_name in message and f"pip install {pip_name}" in message and f"fastlight[{extra}]" in message


def test_default_logger_without_tensorboard_falls_back_to_csv_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if tensorboard were not installed
    with pytest.warns(UserWarning, match=r"`tensorboard` package is not installed.*CSVLogger") as record:
        trainer = fastlight.Trainer(default_root_dir=str(tmp_path), enable_progress_bar=False,
                                    enable_model_summary=False)
    assert [type(lg) for lg in trainer.loggers] == [CSVLogger]
    assert trainer.logger.save_dir == str(tmp_path)
    warning = next(w for w in record if "tensorboard" in str(w.message))
    assert warning.filename == __file__  # points at the user's Trainer(...) line


def test_default_logger_with_tensorboard_is_tensorboard_without_warning(tmp_path):
    pytest.importorskip("tensorboard")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = fastlight.Trainer(default_root_dir=str(tmp_path), enable_progress_bar=False,
                                    enable_model_summary=False)
    assert [type(lg) for lg in trainer.loggers] == [TensorBoardLogger]
    assert not [w for w in record if "tensorboard" in str(w.message)]


def test_explicit_csv_logger_is_used_without_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = fastlight.Trainer(logger=CSVLogger(tmp_path), enable_progress_bar=False,
                                    enable_model_summary=False)
    assert isinstance(trainer.logger, CSVLogger)
    assert not [w for w in record if "tensorboard" in str(w.message)]
