"""Shared settings of the tutorials: the full schedule, or a short one for tests."""

import os

import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
QUICK = os.environ.get("NULLTTA_QUICK") == "1"
SCHEDULE = {"num_inference_steps": 10, "n_min": 1, "n_max": 3} if QUICK else {}
