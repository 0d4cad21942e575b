"""The published VTAB-1k recipes of the vision PETL baselines, as config keys (BASELINES_VISION.md §A1–§A4; the recipe
contract of the lead: optimizer, lr, weight_decay, batch_size, epochs, warmup_epochs, warmup_lr, lr_min,
schedule_interval). Warm-ups are timm's linear ramp (``warmup: linear``) from ``warmup_lr``: 1e-6 in NOAH's
code, 1e-7 in SSF's, 0 where the source does not say. Their drop-path (0.1 in NOAH, 0–0.2 in SSF) is not applied: lorevit keeps the frozen ViT in eval mode."""
from __future__ import annotations


def adamw_recipe(lr: float, weight_decay: float, batch_size: int = 64, warmup_epochs: float = 10,
                 lr_min: float = 1e-5, epochs: int = 100, warmup_lr: float = 1e-6) -> dict:
    """An AdamW + warm-up + per-step cosine recipe (the form every VTAB-1k baseline here uses)."""
    return {"optimizer": "adamw", "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "epochs": epochs,
            "warmup_epochs": warmup_epochs, "warmup": "linear", "warmup_lr": warmup_lr, "lr_min": lr_min, "schedule_interval": "step"}


# NOAH:configs/LoRA/VTAB/slurm_train_lora_vtab.sh + NOAH:supernet_train_prompt.py defaults (V-PETL's LoRA row)
NOAH_LORA = adamw_recipe(1e-3, 1e-4)
# PETLV:experiment/config/lr_wd_vtab_processed.yml: the grid lr {1e-3, 1e-2} × wd {1e-4, 1e-3}, its first point; used
# where the VTAB rows' own recipe is not stated (AdaptFormer's 0.16M row, adapters, BitFit: §A2–§A4 [U])
PETL_VISION_GRID = adamw_recipe(1e-3, 1e-4)
# SSF:train_scripts/vit/vtab/*/train_ssf.sh, the most common task setting (batch 32 × 2 processes; per task lr 1e-3…5e-2)
SSF_VTAB = adamw_recipe(5e-3, 5e-5, lr_min=1e-8, warmup_lr=1e-7)
# VPT:configs/base-finetune.yaml + tune_vtab.py: batch 384, warm-up 5; grid point lr 1e-4, wd 1e-4
VPT_FULL = adamw_recipe(1e-4, 1e-4, batch_size=384, warmup_epochs=5, lr_min=0.0, warmup_lr=0.0)
