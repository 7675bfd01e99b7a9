#!/usr/bin/env bash
# The two SAC-GLAM refiners of bench_refine.py (issue 10): same budget (80 SAC updates, batch 8, seed 0),
# with and without hindsight relabelling, on the training tasks (held out: smac_3m, lbf_2s-8x8-2p-2f-coop).
#   bash benchmarks/train_refiners.sh STORE      # then: bench_refine.py --store STORE --refiner sacglam_her=sacglam_her ...
# About 12-20 minutes per refiner on a 2-core CPU (1 torch thread). Prints each run's JSON summary.
set -euo pipefail
STORE=${1:?usage: bash benchmarks/train_refiners.sh STORE}
GOALS=masks_dead_agents,not_vdn,state_dependent,uses_feature:nearest_enemy_distance,uses_feature:nearest_food_distance
for arm in her no-her; do
  tfcaf tune --method sac-glam --base smollm2 --tasks smac_8m,lbf_8x8-2p-3f --goals "$GOALS" --horizon 3 \
    --steps 80 --batch 8 --seed 0 "--$arm" --name "sacglam_${arm//-/}" --store "$STORE" --json
done
