"""The pipeline: the one place, with the CLI, that touches disk, network and clock.

A run builds one context (edi.pipeline.context: workspace, clock, validated profile and change
settings, stores, alerting), then the build (edi.pipeline.build: map → rules → diff → guard →
write → validate → rename) and the delivery (edi.pipeline.delivery: encrypt → deliver → log),
inside one failure boundary (edi.pipeline.failures). edi.pipeline.runs puts them together;
edi.pipeline.stores is where run state lives.
"""

from edi.pipeline.build import (
    BuildOptions,
    GeneratedFile,
    build,
    generate,
    publish,
    resolve_source,
    seal_834,
)
from edi.pipeline.context import RunContext, actor, lock_wait_s
from edi.pipeline.delivery import FileFacts, RunOutcome, deliver_file
from edi.pipeline.failures import (
    failure_boundary,
    record_failure,
    unexpected_failure,
    warn_without_alert_channels,
)
from edi.pipeline.preview import first_file_preview, preview
from edi.pipeline.runs import due_file_type, run, send
from edi.pipeline.stores import Stores, baselines, control_numbers
from edi.x12.writer import content_fingerprint

__all__ = [
    "BuildOptions",
    "FileFacts",
    "GeneratedFile",
    "RunContext",
    "RunOutcome",
    "Stores",
    "actor",
    "baselines",
    "build",
    "content_fingerprint",
    "control_numbers",
    "deliver_file",
    "due_file_type",
    "failure_boundary",
    "first_file_preview",
    "generate",
    "lock_wait_s",
    "preview",
    "publish",
    "record_failure",
    "resolve_source",
    "run",
    "seal_834",
    "send",
    "unexpected_failure",
    "warn_without_alert_channels",
]
