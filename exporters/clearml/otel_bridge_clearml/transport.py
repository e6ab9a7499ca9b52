"""The thin layer over the ClearML SDK: find or create the task (offline without server
credentials) and report tables, scalars, console text, HTML media and output models to it.
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_bridge_clearml.settings import ClearMLSettings

__all__ = ["ClearMLTransport", "OpenedTask", "open_task", "server_credentials_configured"]

_logger = logging.getLogger(__name__)

# Every framework binding clearml 2.1's Task.init knows, off, and its repository detection off. A
# plain `auto_connect_frameworks=False` still detects the repository: it records the checkout's
# uncommitted diff in the task, analyses its packages in a thread, and close() waits up to 300 s
# for that. Only a dict with "detect_repository": False turns detection off, and in a dict every
# framework left out counts as on, so all are listed.
_FRAMEWORKS_OFF: Mapping[str, bool] = {
    framework: False
    for framework in (
        "catboost",
        "detect_repository",
        "fastai",
        "gradio",
        "hydra",
        "joblib",
        "lightgbm",
        "matplotlib",
        "megengine",
        "pytorch",
        "scikit",
        "tensorboard",
        "tensorflow",
        "tfdefines",
        "xgboost",
    )
}
# What the exporter asks of Task.init unless task_init_options say otherwise: no patching of the
# app's frameworks, argument parser or stdout, no repository snapshot, no resource-monitor
# thread; a task that logs LangChain traces should not change how the rest of the app behaves.
_TASK_INIT_DEFAULTS: Mapping[str, Any] = {
    "output_uri": True,  # as the seed: output models are uploaded, not only registered
    "auto_connect_frameworks": _FRAMEWORKS_OFF,
    "auto_connect_arg_parser": False,
    "auto_connect_streams": False,
    "auto_resource_monitoring": False,
}
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def server_credentials_configured() -> bool:
    """True when the ClearML SDK has credentials for a server: CLEARML_AUTH_TOKEN, the
    CLEARML_API_ACCESS_KEY/SECRET_KEY variables, `api.credentials` in clearml.conf, or
    `Task.set_credentials`."""
    from clearml.backend_api.session import Session
    from clearml.backend_api.session.defs import ENV_ACCESS_KEY, ENV_AUTH_TOKEN, ENV_SECRET_KEY
    from clearml.config import config_obj

    if ENV_AUTH_TOKEN.get():
        return True
    access_key = (
        ENV_ACCESS_KEY.get()
        or config_obj.get("api.credentials.access_key", None)
        or Session.default_key
    )
    secret_key = (
        ENV_SECRET_KEY.get()
        or config_obj.get("api.credentials.secret_key", None)
        or Session.default_secret
    )
    return bool(access_key and secret_key)


@dataclass(frozen=True, slots=True)
class OpenedTask:
    task: Any  # clearml.Task
    created: bool  # True when we created it (and so may close it)


def open_task(settings: ClearMLSettings, task_init_options: Mapping[str, Any]) -> OpenedTask:
    """The current ClearML task if there is one, else a new one from `settings`.

    With no server credentials the new task runs in ClearML's offline mode, and one log line
    says where the session is stored and how to import it into a server later.
    """
    from clearml import Task

    current: Any = Task.current_task()
    if current is not None:
        return OpenedTask(current, created=False)
    if not Task.is_offline() and not server_credentials_configured():
        Task.set_offline(True)
    _report_from_threads(Task)
    try:
        with _random_seeding_off(Task):
            task: Any = Task.init(
                project_name=settings.project_name,
                task_name=settings.task_name,
                task_type=settings.task_type,
                tags=list(settings.tags) or None,
                **_task_init_arguments(task_init_options),
            )
    except BaseException:
        _restore_reporting_mode(Task)
        raise
    if task.is_offline():
        folder = task.get_offline_mode_folder()
        _logger.warning(
            "clearml: no ClearML server credentials are configured, so task %r logs offline to "
            "%s (zipped to %s.zip when the task closes); import it into a server with "
            "clearml.Task.import_offline_session(path)",
            task.name,
            folder,
            folder,
        )
    return OpenedTask(task, created=True)


def _task_init_arguments(task_init_options: Mapping[str, Any]) -> dict[str, Any]:
    """The exporter's Task.init defaults with `task_init_options` over them. A dict given for
    `auto_connect_frameworks` is merged over the all-off defaults, so `{"pytorch": True}` turns
    on that binding alone (in ClearML's own reading every framework it leaves out would be on,
    repository detection included)."""
    arguments = {**_TASK_INIT_DEFAULTS, **task_init_options}
    frameworks = arguments["auto_connect_frameworks"]
    if isinstance(frameworks, Mapping):
        # A new dict each time: Task.init tests for a dict, and the defaults stay untouched.
        arguments["auto_connect_frameworks"] = {**_FRAMEWORKS_OFF, **frameworks}
    return arguments


@contextmanager
def _random_seeding_off(task_class: Any) -> Iterator[None]:
    """Task.init seeds `random`, numpy, torch and TensorFlow with a fixed seed (1337) by default:
    every process would then draw the same random numbers after it, the OpenTelemetry SDK's
    trace and span ids included. A task created for the app's traces must not do that, so
    ClearML's own switch is off while it is created, and back as the app had it afterwards (the
    app's own Task.init keeps ClearML's behaviour)."""
    # clearml has a class-level setter for the seed of new tasks but no class-level getter.
    app_seed = task_class._random_seed
    task_class.set_random_seed(None)
    try:
        yield
    finally:
        task_class.set_random_seed(app_seed)


# What clearml.Task._report_subprocess_enabled was before `_report_from_threads` set it (None:
# not set by us; _ABSENT: the class inherited it).
_ABSENT = object()
_app_reporting_mode: Any = None


def _report_from_threads(task_class: Any) -> None:
    """Have the task created next report from a thread of this process, unless the user's
    clearml.conf says `sdk.development.report_use_subprocess`.

    ClearML's default on Linux forks a reporting process at Task.init (from an app whose
    threads are running) and hard-codes a 5 s period for it: the parent's flush cannot wake
    it, so every `Task.flush(wait_for_uploads=True)` waits up to 5 s whatever was reported
    (each delivery and each flush_tracker did). From a thread, a flush wakes the reporter and
    lasts as long as the writing. ClearML reads the class attribute again at a fork (to restart
    the reporting threads in the child), so it stays set while the task is open and goes back
    when it closes (`_restore_reporting_mode`)."""
    global _app_reporting_mode
    from clearml.config import config_obj

    if config_obj.get("sdk.development.report_use_subprocess", None) is not None:
        return
    if _app_reporting_mode is None:
        _app_reporting_mode = task_class.__dict__.get("_report_subprocess_enabled", _ABSENT)
    task_class._report_subprocess_enabled = False


def _restore_reporting_mode(task_class: Any) -> None:
    global _app_reporting_mode
    if _app_reporting_mode is None:
        return
    if _app_reporting_mode is _ABSENT:
        if "_report_subprocess_enabled" in task_class.__dict__:
            delattr(task_class, "_report_subprocess_enabled")
    else:
        task_class._report_subprocess_enabled = _app_reporting_mode
    _app_reporting_mode = None


class ClearMLTransport:
    """Reports to one ClearML task; every call is a plain ClearML SDK call."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self._logger = task.get_logger()
        self._was_main_task = bool(task.is_main_task())
        # A task reporting through ClearML's subprocess (ClearML's Linux default, for a task the
        # app created) cannot be waited for without waiting out that process's fixed 5 s period.
        self._reports_through_subprocess = bool(task.report_subprocess_enabled)

    @property
    def is_open(self) -> bool:
        """False once the task (when it was the process's main task) has been closed, e.g. by
        ClearML's own exit hook: what is reported after that never reaches the session."""
        from clearml import Task

        return not self._was_main_task or Task.current_task() is self.task

    @property
    def offline_folder(self) -> Path | None:
        """Where an offline task's session is written (None when logging to a server)."""
        if not self.task.is_offline():
            return None
        folder = self.task.get_offline_mode_folder()
        return Path(folder) if folder is not None else None

    def report_table(self, title: str, series: str, rows: Sequence[Sequence[Any]]) -> None:
        """`rows`: a header row, then data rows (ClearML's list-of-rows table)."""
        self._logger.report_table(title, series, iteration=0, table_plot=[list(r) for r in rows])

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        self._logger.report_scalar(title, series, value, iteration)

    def report_text(self, text: str) -> None:
        # The task's console log only: the app's own stdout stays the app's.
        self._logger.report_text(text, print_console=False)

    def report_html(self, title: str, series: str, html: str, iteration: int) -> None:
        self._logger.report_media(
            title, series, iteration=iteration, stream=io.StringIO(html), file_extension=".html"
        )

    def save_output_model(self, name: str | None, config_text: str) -> None:
        """An OutputModel of this task whose config and weights file are `config_text` (JSON)."""
        from clearml import OutputModel

        filename = _UNSAFE_FILENAME.sub("_", name or "langchain_asset") + ".json"
        with tempfile.TemporaryDirectory(prefix="otel-bridge-clearml-") as directory:
            weights = Path(directory, filename)
            weights.write_text(config_text, encoding="utf-8")
            model = OutputModel(task=self.task, config_text=config_text, name=name)
            try:
                # Uploaded before the call returns (and the temporary file goes).
                model.update_weights(
                    weights_filename=str(weights),
                    auto_delete_file=False,
                    target_filename=name,
                    async_enable=False,
                )
            except AttributeError:
                if not self.task.is_offline():
                    raise
                # clearml 2.1.x: update_weights first reads `published`, which the offline
                # placeholder model lacks, so it always fails offline; this is the offline
                # branch update_weights would take next (it copies the file into the session).
                model._update_weights_offline(weights_filename=str(weights), target_filename=name)

    def flush(self) -> None:
        """Hand everything reported so far to ClearML's writer and wait for it: until it is
        written (offline) or sent, when ClearML reports from a thread of this process; until its
        reporting subprocess holds it, when the task reports through one. That process writes on
        its own fixed period (and before the task closes), and waiting for its write would cost
        up to that period on every flush whatever was reported."""
        self.task.flush(wait_for_uploads=not self._reports_through_subprocess)

    def close(self) -> None:
        """Close the task; offline, ClearML then zips the session next to its folder."""
        from clearml import Task

        folder = self.offline_folder
        try:
            self.task.close()
        finally:
            _restore_reporting_mode(Task)
        if folder is not None:
            _logger.info("clearml: offline session stored in %s.zip", folder)
