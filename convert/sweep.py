"""``nemg sweep CONFIG``: the box's decision parameters searched on Ray Tune, each trial
scored on data the model was not tuned to, with one stated rule for the choice.

A sweep file (TOML; docs/cluster.md has an example)::

    [sweep]
    bundle = "models/nemg-default.nemg"   # whose decision is searched (default: shipped)
    score_on = ["biosim", "heldout"]      # settings of convert.heldout.setting_recording
    per_class = 4                         # recordings per class and setting
    duration_s = 4.0
    seed = 36000                          # setting k's recordings are drawn from seed + k
    samples = 0                           # 0: every combination; N: N drawn with `seed`

    [space]                               # dotted keys of the bundle's decision
    uncertain_threshold = [0.4, 0.5, 0.6]
    "recogniser.regular_cv" = [0.06, 0.08, 0.1]

Training parameters too: ``"train.<field>"`` keys of :class:`convert.train.TrainConfig` in
``[space]``, ``train_data = "CORPUS"`` in ``[sweep]`` and fixed settings in ``[train]``
(e.g. ``epochs = 12``). Then every trial trains a model on the corpus (make model's
:data:`convert.train.RECIPE` with the fixed settings and the trial's), int8 by PTQ, packed
with the bundle's front end and decision under the development key in
``OUT/trials/trial-<i>/``, and is scored as above; the chosen trial's model is the one
``--bundle-out`` re-signs.

Every trial reads the same recordings (drawn once, here, from the seeds) through the box's
own pipeline (:class:`edge.pipeline.Pipeline` with the trial's decision), so a trial's
score depends on its parameters alone and a sweep repeats exactly. The bundle's own
decision is always trial 0. The choice (:data:`RULE`): the highest mean box macro-F1 over
``score_on``; among trials within :data:`TIE` of it, the one changing the fewest
parameters from the bundle, then the earliest. The table of trials goes into
``sweep.json`` / ``sweep.md`` and, with ``--bundle-out``, into the re-signed bundle's
metrics and model card.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, InputError
from edge.labels import LABELS

TIE = 0.005
"""Mean macro-F1 within this of the best counts as a tie (the simulators' recordings are
few: a smaller difference is not a finding)."""
RULE = (f"highest mean box macro-F1 over the score_on settings; within {TIE} of it, the "
        "trial changing the fewest decision parameters from the bundle, then the earliest")
SETTINGS = ("biosim", "heldout", "synth", "background_synth", "background_biosim")


@dataclass(frozen=True)
class SweepConfig:
    """A sweep file, checked."""

    space: dict[str, list]
    """Dotted key of the bundle's decision -> the values to try."""
    bundle: Path | None = None
    score_on: tuple[str, ...] = ("biosim", "heldout")
    per_class: int = 4
    duration_s: float = 4.0
    seed: int = 36_000
    samples: int = 0
    train_data: Path | None = None
    """Corpus each trial trains a model on (when the sweep has training parameters)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Fixed TrainConfig settings of every trained trial (``[train]``)."""


TRAIN_PREFIX = "train."


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(decision parameters, TrainConfig parameters) of a trial."""
    return ({k: v for k, v in params.items() if not k.startswith(TRAIN_PREFIX)},
            {k[len(TRAIN_PREFIX):]: v for k, v in params.items() if k.startswith(TRAIN_PREFIX)})


def train_config(fixed: dict[str, Any], params: dict[str, Any]):
    """make model's recipe with the sweep's fixed settings and a trial's (one process:
    trials run side by side)."""
    from dataclasses import replace

    from convert.train import RECIPE

    try:
        return replace(RECIPE, workers=1, **{**fixed, **params})
    except TypeError as exc:
        raise ConfigError(f"not a training parameter ({exc})") from None


def load_config(path: Path) -> SweepConfig:
    """A sweep file; a bad one is one ``ConfigError`` naming it."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a sweep file ({exc})") from None
    sweep, space = doc.get("sweep", {}), doc.get("space", {})
    unknown = set(sweep) - {"bundle", "score_on", "per_class", "duration_s", "seed", "samples",
                            "train_data"}
    if unknown or set(doc) - {"sweep", "space", "train"}:
        extra = sorted(unknown | (set(doc) - {"sweep", "space", "train"}))
        raise ConfigError(f"{path}: unknown keys {extra}")
    if not space or not all(isinstance(v, list) and v for v in space.values()):
        raise ConfigError(f"{path}: [space] must give each parameter a list of values")
    try:
        cfg = SweepConfig(space=dict(space),
                          bundle=Path(sweep["bundle"]) if "bundle" in sweep else None,
                          score_on=tuple(sweep.get("score_on", SweepConfig.score_on)),
                          per_class=int(sweep.get("per_class", SweepConfig.per_class)),
                          duration_s=float(sweep.get("duration_s", SweepConfig.duration_s)),
                          seed=int(sweep.get("seed", SweepConfig.seed)),
                          samples=int(sweep.get("samples", 0)),
                          train_data=(Path(sweep["train_data"]) if "train_data" in sweep
                                      else None),
                          train=dict(doc.get("train", {})))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if bad := [s for s in cfg.score_on if s not in SETTINGS]:
        raise ConfigError(f"{path}: unknown setting(s) {bad} (known: {', '.join(SETTINGS)})")
    if cfg.per_class < 1 or not 2.0 <= cfg.duration_s <= 60.0 or cfg.samples < 0:
        raise ConfigError(f"{path}: per_class ≥ 1, duration_s in 2..60, samples ≥ 0")
    trains = cfg.train or any(k.startswith(TRAIN_PREFIX) for k in cfg.space)
    if trains and cfg.train_data is None:
        raise ConfigError(f"{path}: training parameters need train_data = CORPUS in [sweep]")
    if cfg.train_data is not None and not (cfg.train_data / "labels.csv").is_file():
        raise ConfigError(f"{path}: train_data {cfg.train_data} is not a corpus folder")
    return cfg


def with_params(decision, params: dict[str, Any]):
    """``decision`` (a :class:`edge.spec.DecisionConfig`) with dotted ``params`` set."""
    from edge.spec import DecisionConfig

    d = decision.to_dict()
    for key, value in params.items():
        node = d
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"the bundle's decision has no parameter {key!r}")
        node[leaf] = value
    try:
        return DecisionConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{params}: {exc}") from None


def trial_params(cfg: SweepConfig, decision) -> list[dict[str, Any]]:
    """The trials' parameters: the bundle's own decision (and, training, the recipe with the
    fixed settings) first ({}), then each distinct combination (every one, or ``samples``
    drawn with the seed), checked."""
    keys = sorted(cfg.space)
    combos = [dict(zip(keys, vs, strict=True))
              for vs in itertools.product(*(cfg.space[k] for k in keys))]
    if cfg.samples and cfg.samples < len(combos):
        pick = np.random.default_rng(cfg.seed).choice(len(combos), cfg.samples, replace=False)
        combos = [combos[i] for i in sorted(pick)]
    base = decision.to_dict()
    base_train = train_config(cfg.train, {}) if cfg.train_data is not None else None

    def identity(params: dict[str, Any]) -> str:
        dec, tr = split_params(params)
        trained = None if base_train is None else repr(train_config(cfg.train, tr))
        return json.dumps([with_params(decision, dec).to_dict(), trained], sort_keys=True)

    trials, seen = [{}], [identity({})]
    for c in combos:
        changed = {k: v for k, v in c.items()
                   if (getattr(base_train, k[len(TRAIN_PREFIX):], None)
                       if k.startswith(TRAIN_PREFIX) else _get(base, k)) != v}
        if (key := identity(changed)) not in seen:
            seen.append(key)
            trials.append(changed)
    return trials


def _get(d: dict, key: str) -> Any:
    for p in key.split("."):
        d = d.get(p) if isinstance(d, dict) else None
    return d


def _draw(job: tuple[str, str, int, int, float], uv_per_lsb: float) -> np.ndarray:
    from convert.heldout import setting_recording
    from edge.readers.recording import uv_to_int16

    return uv_to_int16(setting_recording(*job), uv_per_lsb)


def draw_recordings(cfg: SweepConfig, bundle) -> dict[str, list[tuple[str, np.ndarray]]]:
    """setting -> [(class, int16 samples at the bundle's rate)], drawn once per sweep."""
    from convert.heldout import FS
    from edge.labels import PATHOLOGICAL
    from nemg_common.executor import executor

    if bundle.mel_config.sample_rate_hz != FS:
        raise InputError(f"the simulators draw at {FS} Hz, the bundle listens at "
                         f"{bundle.mel_config.sample_rate_hz} Hz")
    out = {}
    with executor(2) as ex:
        for k, setting in enumerate(cfg.score_on):
            labels = [lab for lab in LABELS
                      if not setting.startswith("background") or lab in PATHOLOGICAL]
            jobs = [(setting, lab, i, cfg.seed + k, cfg.duration_s) for lab in labels
                    for i in range(cfg.per_class)]
            pcm = ex.map(_draw, jobs, shared=bundle.mel_config.uv_per_lsb)
            out[setting] = [(job[1], x) for job, x in zip(jobs, pcm, strict=True)]
    return out


def score_decision(bundle, decision, recordings: dict[str, list]) -> dict[str, float]:
    """The box (:mod:`convert.threeway`) under ``decision``, per setting: macro-F1 and the
    share of windows confidently wrong; ``score``: the mean macro-F1."""
    from convert.threeway import ThreeWayTally
    from edge.pipeline import Pipeline

    out: dict[str, float] = {}
    for setting, recs in recordings.items():
        tally = ThreeWayTally()
        for label, pcm in recs:
            windows = Pipeline(bundle, decision=decision).push(pcm, 0)[0]
            tally.add(label, windows, bundle.labels, decision.uncertain_threshold)
        box = tally.report()["box"]
        out[f"macro_f1_{setting}"] = round(float(box["macro_f1"]), 4)
        out[f"confidently_wrong_{setting}"] = round(float(box["confidently_wrong_share"]), 4)
    out["score"] = round(float(np.mean([out[f"macro_f1_{s}"] for s in recordings])), 4)
    return out


def trained_bundle(bundle, train: dict[str, Any], data_dir: Path, workdir: Path):
    """``bundle``'s front end and decision with a model trained on corpus ``data_dir`` under
    :func:`train_config` ``train``, int8 by PTQ, packed under the development key as
    ``workdir``/trial.nemg (verified and self-tested like any bundle)."""
    from convert.make_model import DEV_KEY
    from convert.packing import pack
    from convert.quantize import quantize_checkpoint
    from convert.train import train as train_model
    from edge.runtime import load_verified

    result = train_model(data_dir, workdir / "checkpoint", train_config({}, train),
                         spec=bundle.spec)
    quantize_checkpoint(result.checkpoint, data_dir, workdir / "model.tflite", "ptq")
    pack(workdir / "trial.nemg", model=(workdir / "model.tflite").read_bytes(),
         key_path=DEV_KEY, name=f"{bundle.name}-trial", version=bundle.version,
         spec=bundle.spec, labels=tuple(bundle.labels), decision=bundle.decision,
         development_key=True,
         checkpoint=Path(result.checkpoint).read_bytes())
    return load_verified(workdir / "trial.nemg")


def _trial(config: dict, data: dict) -> None:
    """One Ray Tune trial: its decision (and model, when the sweep trains) scored on the
    sweep's recordings."""
    from ray import tune

    bundle, i = data["bundle"], config["index"]
    decision_params, train_params = split_params(data["trials"][i])
    if data["train_data"] is not None:
        bundle = trained_bundle(bundle, {**data["train"], **train_params},
                                Path(data["train_data"]), trial_dir(Path(data["out"]), i))
    decision = with_params(bundle.decision, decision_params)
    tune.report({"index": i, **score_decision(bundle, decision, data["recordings"])})


def trial_dir(out: Path, index: int) -> Path:
    """Where a training sweep's trial ``index`` keeps its model."""
    return out.resolve() / "trials" / f"trial-{index}"


def choose(rows: list[dict]) -> dict:
    """The trial :data:`RULE` picks from ``rows`` (each: index, params, score)."""
    best = max(r["score"] for r in rows)
    near = [r for r in rows if r["score"] >= best - TIE]
    return min(near, key=lambda r: (len(r["params"]), r["index"]))


def _connect() -> None:
    import logging

    import ray

    from nemg_common import executor as ex

    if ex.configured():
        ex.executor()  # connects to the cluster of --ray
    elif not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                 logging_level=logging.ERROR)


def run_sweep(config_path: Path, out: Path) -> dict[str, Any]:
    """Run the sweep of ``config_path`` on Ray Tune; write ``out``/sweep.json and sweep.md;
    return the JSON (config, rule, trials, choice)."""
    from ray import tune

    from edge.runtime import load_verified

    cfg = load_config(config_path)
    bundle = load_verified(cfg.bundle)
    try:
        trials = trial_params(cfg, bundle.decision)
    except ConfigError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
    recordings = draw_recordings(cfg, bundle)
    _connect()
    out.mkdir(parents=True, exist_ok=True)
    tuner = tune.Tuner(
        tune.with_parameters(_trial, data={
            "bundle": bundle, "recordings": recordings, "trials": trials,
            "train": cfg.train, "out": str(out.resolve()),
            "train_data": str(cfg.train_data.resolve()) if cfg.train_data else None}),
        param_space={"index": tune.grid_search(list(range(len(trials))))},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name="sweep", storage_path=str((out / "tune").resolve()),
                                  verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=3)))
    with contextlib.redirect_stdout(sys.stderr):  # Tune's tables: stdout is the JSON
        grid = tuner.fit()
    rows = []
    for r in grid:
        if r.error is not None:
            raise RuntimeError(f"trial {r.config.get('index')} failed: {r.error}")
        i = int(r.metrics["index"])
        rows.append({"index": i, "params": trials[i],
                     **{k: v for k, v in r.metrics.items()
                        if k == "score" or k.startswith(("macro_f1_", "confidently_wrong_"))}})
    rows.sort(key=lambda r: r["index"])
    result = {"config": {**cfg.__dict__, "bundle": str(cfg.bundle) if cfg.bundle else None,
                         "score_on": list(cfg.score_on),
                         "train_data": str(cfg.train_data) if cfg.train_data else None},
              "out": str(out),
              "bundle": f"{bundle.name} {bundle.version}", "rule": RULE, "trials": rows,
              "choice": choose(rows)}
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    (out / "sweep.md").write_text(sweep_table(result))
    return result


def sweep_table(result: dict) -> str:
    """The trials as a Markdown section for a model card."""
    settings = result["config"]["score_on"]
    head = ["trial", "parameters", *[f"macro-F1 {s}" for s in settings], "mean"]
    lines = [f"## Decision sweep ({result['bundle']})", "",
             f"Choice rule: {result['rule']}. Chosen: trial {result['choice']['index']}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["trials"]:
        params = ", ".join(f"{k} = {v}" for k, v in r["params"].items()) or "(the bundle's)"
        mark = " **chosen**" if r["index"] == result["choice"]["index"] else ""
        lines.append(f"| {r['index']}{mark} | {params} | "
                     + " | ".join(f"{r[f'macro_f1_{s}']:.3f}" for s in settings)
                     + f" | {r['score']:.3f} |")
    return "\n".join(lines) + "\n"


def chosen_bundle(result: dict, out: Path, *, key_path: Path, version: str) -> dict[str, Any]:
    """The sweep's bundle (or its chosen trial's model) re-signed with the chosen decision;
    the sweep's table in its metrics and description (its model card). Returns the new
    manifest."""
    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.runtime import load_verified

    choice = result["choice"]
    if result["config"]["train_data"]:  # the chosen trial's own model
        b = load_verified(trial_dir(Path(result["out"]), choice["index"]) / "trial.nemg")
    else:
        bundle_path = result["config"]["bundle"]
        b = Bundle.read(Path(bundle_path)) if bundle_path else load_verified()
    decision = with_params(b.decision, split_params(choice["params"])[0])
    metrics = {**b.manifest.get("metrics", {}),
               "decision_sweep": {k: result[k] for k in ("rule", "trials", "choice")}}
    description = (b.manifest.get("description", "") + "\n\n" + sweep_table(result)).strip()
    return repack(b, out, key_path=key_path, version=version, decision=decision,
                  metrics=metrics, description=description)
