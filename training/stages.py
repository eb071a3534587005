"""Resumable stages that never report stale results: each stage's record says what it ran with.

A stage runs in its own folder and returns the files it produced (name -> path). Its record
(`.stages/<name>.json`, written atomically) holds the configuration it ran with, the sha256 of
every input file (the recorded outputs of the stages it reads) and of every output. A later run
skips a stage only when all of that still holds; otherwise it says what changed and redoes that
stage and every stage after it (`force` redoes everything). A stage that was interrupted with
the same configuration and inputs resumes in its folder (training resumes from its
checkpoints); one redone for a difference starts from an empty folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ghostnet_keras.atomic_write import write_atomically

Outputs = dict[str, Path]
# A stage function: (its folder, the outputs of the stages it reads by stage name) -> outputs.
StageFunction = Callable[[Path, Mapping[str, Outputs]], Mapping[str, Path]]
RECORD_DIR = ".stages"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a job: `run` writes into `<output_dir>/<name>` only what it returns.

    `config` is everything the stage's result depends on besides its input files (JSON-able);
    `reads` names the earlier stages whose outputs it takes (its inputs, digested).
    """

    name: str
    run: StageFunction
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    reads: tuple[str, ...] = ()


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder (its files' relative names and contents, in order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


class StageRunner:
    """Runs stages in order in `output_dir`, skipping those whose record is still current."""

    def __init__(self, output_dir: str | Path, force: bool = False,
                 log: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
        self.output_dir = Path(output_dir)
        self.force = force
        self.log = log
        self.outputs: dict[str, Outputs] = {}

    def record_path(self, name: str) -> Path:
        return self.output_dir / RECORD_DIR / f"{name}.json"

    def run(self, stages: Iterable[Stage]) -> dict[str, Outputs]:
        """Runs (or skips) every stage; returns each stage's outputs by stage name."""
        redone: str | None = None
        for stage in stages:
            unknown = [name for name in stage.reads if name not in self.outputs]
            if unknown:
                raise ValueError(f"stage {stage.name!r} reads {unknown}, which do not run "
                                 "before it")
            inputs = {f"{name}/{key}": path for name in stage.reads
                      for key, path in self.outputs[name].items()}
            wanted = {"config": _jsonable(stage.config),
                      "inputs": {key: self._file_entry(path) for key, path in inputs.items()}}
            record = self._read_record(stage.name)
            if self.force:
                reason = "--force"
            elif redone is not None:
                reason = f"an earlier stage ({redone}) was redone"
            else:
                reason = self._difference(record, wanted)
            if reason is None:
                self.log(f"[{stage.name}] up to date ({self.record_path(stage.name)}); skipping")
                self.outputs[stage.name] = self._recorded_outputs(record)
                continue
            redone = redone or stage.name
            self.outputs[stage.name] = self._run_stage(stage, wanted, record, reason)
        return self.outputs

    def _run_stage(self, stage: Stage, wanted: dict[str, Any], record: dict[str, Any] | None,
                   reason: str) -> Outputs:
        folder = self.output_dir / stage.name
        resumable = (record is not None and record.get("status") == "running"
                     and not self.force and _same_run(record, wanted))
        if resumable:
            self.log(f"[{stage.name}] resuming an interrupted run with the same configuration")
        else:
            self.log(f"[{stage.name}] redoing: {reason}" if record or self.force
                     else f"[{stage.name}] starting")
            if folder.exists():
                shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._write_record(stage.name, {**wanted, "status": "running"})
        start = time.perf_counter()
        produced = stage.run(folder, {name: dict(self.outputs[name]) for name in stage.reads})
        outputs = {key: Path(path) for key, path in produced.items()}
        for key, path in outputs.items():
            if not path.exists():
                raise RuntimeError(f"stage {stage.name!r} reported output {key!r} at {path}, "
                                   "which does not exist")
        seconds = time.perf_counter() - start
        self._write_record(stage.name, {
            **wanted, "status": "done", "seconds": round(seconds, 1),
            "outputs": {key: self._file_entry(path) for key, path in outputs.items()}})
        self.log(f"[{stage.name}] finished in {seconds:.0f} s")
        return outputs

    def _difference(self, record: dict[str, Any] | None, wanted: dict[str, Any]) -> str | None:
        """What differs between the recorded run and this one (None: the record is current)."""
        if record is None:
            return "no record of an earlier run"
        if record.get("status") != "done":
            return "its last run did not finish"
        changes = _changes("", record.get("config"), wanted["config"])
        if changes:
            return "configuration changed: " + "; ".join(changes)
        recorded, current = record.get("inputs", {}), wanted["inputs"]
        for key in sorted(set(recorded) | set(current)):
            if key not in recorded or key not in current:
                return f"input {key} {'added' if key in current else 'removed'}"
            if recorded[key] != current[key]:
                return (f"input {key} changed ({recorded[key]['path']} sha256 "
                        f"{recorded[key]['sha256'][:12]} -> {current[key]['path']} sha256 "
                        f"{current[key]['sha256'][:12]})")
        for key, entry in record.get("outputs", {}).items():
            path = self.output_dir / entry["path"]
            if not path.exists():
                return f"output {key} ({entry['path']}) is missing"
            if file_digest(path) != entry["sha256"]:
                return f"output {key} ({entry['path']}) changed since the stage wrote it"
        return None

    def _file_entry(self, path: Path) -> dict[str, str]:
        try:
            name = path.resolve().relative_to(self.output_dir.resolve()).as_posix()
        except ValueError:
            name = str(path.resolve())
        return {"path": name, "sha256": file_digest(path)}

    def _recorded_outputs(self, record: dict[str, Any]) -> Outputs:
        return {key: self.output_dir / entry["path"] for key, entry in record["outputs"].items()}

    def _read_record(self, name: str) -> dict[str, Any] | None:
        path = self.record_path(name)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # unreadable: as if there were none (the stage is redone)
        return record if isinstance(record, dict) else None

    def _write_record(self, name: str, record: dict[str, Any]) -> None:
        write_atomically({self.record_path(name): json.dumps(record, indent=2) + "\n"})


def _same_run(record: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return record.get("config") == wanted["config"] and record.get("inputs") == wanted["inputs"]


def _jsonable(value: Any) -> Any:
    """The configuration as it reads back from JSON (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _changes(prefix: str, old: Any, new: Any) -> list[str]:
    """The differing fields of two JSON values, e.g. `epochs: 2 -> 3`."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for key in sorted(set(old) | set(new))
                for change in _changes(f"{prefix}{key}.", old.get(key, "(unset)"),
                                       new.get(key, "(unset)"))]
    return [] if old == new else [f"{prefix.rstrip('.') or 'value'}: {old!r} -> {new!r}"]
