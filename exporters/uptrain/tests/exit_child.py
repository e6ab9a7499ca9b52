"""Child process for the interpreter-exit test: trace one RAG call through the drop-in
`UpTrainCallbackHandler`, configured from the environment, and exit without flushing, so the one
delivery attempt is the one the exporter's shutdown makes while the interpreter exits.

python -m exporters.uptrain.tests.exit_child SPOOL_DIR [at-exit|judge-down]
"""

from __future__ import annotations

import sys

# Imported up front, as in an app that has evaluated before: the attempt at exit then reaches
# the judge call instead of spending the shutdown timeout importing uptrain.
import uptrain.framework.evalllm  # noqa: F401
from otel_bridge_uptrain import UpTrainCallbackHandler

from tests.chains import QUESTION, rag_chain


def main(spool_dir: str, mode: str = "at-exit") -> None:
    # The long grace keeps the trace from the worker, so the one attempt is the one made while
    # the interpreter exits. "judge-down": with a judge that is not running, so the
    # construction's key check is off.
    handler = UpTrainCallbackHandler(
        log_results=False,
        check_connection=mode != "judge-down",
        exporter_options={
            "spool_dir": spool_dir,
            "grace_period": 120.0,
            "shutdown_timeout": 120.0,
        },
    )
    rag_chain().invoke(QUESTION, config={"callbacks": [handler]})


if __name__ == "__main__":
    main(*sys.argv[1:])
