"""The seed page's example in a child process, with only the import changed: a model with the
drop-in handler, one call, the answer printed. The stand-in for the paid model is the fake chat
model of `tests.chains`. Then, depending on MODE:

- `stay`: the app keeps running (it sleeps) so a test can look for the task meanwhile;
- `exit`: the script ends there, with no flush call, as the seed example does;
- `spooled`: once the spans are in the spool (the drop-in hands them over every 200 ms), it
  prints "spooled" and waits to be killed (run it with a long grace period to keep the trace
  undelivered).

python -m exporters.labelstudio.tests.seed_child PROJECT SPOOL_DIR MODE
(LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the environment, as the seed reads them)
"""

from __future__ import annotations

import sys
import time

from otel_bridge_labelstudio import LabelStudioCallbackHandler

from tests import chains


def main(project: str, spool_dir: str, mode: str) -> None:
    handler = LabelStudioCallbackHandler(
        project_name=project, exporter_options={"spool_dir": spool_dir}
    )
    llm = chains.chat_model().with_config(callbacks=[handler])
    print(llm.invoke(chains.chat_messages()).content, flush=True)
    if mode == "stay":
        time.sleep(120)
    elif mode == "spooled":
        time.sleep(1.0)
        print("spooled", flush=True)
        time.sleep(120)


if __name__ == "__main__":
    main(*sys.argv[1:])
