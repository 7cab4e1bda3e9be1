"""Tutorial 2: weighted and black-box rewards, and a callback of your own."""

from _settings import SCHEDULE
from lightning import Callback

from nulltta import NullTextAligner
from nulltta.rewards import CallableReward

PROMPT = "a blue square on a black background"


class RewardLogger(Callback):
    """Collect the selected candidate's reward at every step."""

    def __init__(self):
        self.rewards = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # The step's record holds tensors with one row per trajectory (here one).
        record = outputs["record"]
        reward = record.per_trajectory.get("selected_reward")
        if reward is None:  # no candidates at this step: the last inner step's reward
            reward = record.inner["reward"][:, -1]
        self.rewards.append(float(reward[0]))  # reading a value waits for the device


# A weighted sum of two rewards, by name: "name:weight,name:weight".
logger = RewardLogger()
aligner = NullTextAligner(
    reward="shapes-preference:0.8,saturation:0.2", callbacks=[logger], **SCHEDULE
).fit(PROMPT)
print(f"weighted reward {aligner.reward_:.3f}; logged {len(logger.rewards)} steps")

# Any function of (images, prompts) is a black box: nulltta switches to
# zero-order gradient estimates for it.
def jpeg_like(images, prompts):
    return -images.diff(dim=-1).abs().mean((1, 2, 3))  # smoother images score higher


black_box = NullTextAligner(reward=CallableReward(jpeg_like), **SCHEDULE).fit(PROMPT)
print("zero-order updates:", black_box.module_.zeroth_order, f"reward {black_box.reward_:.4f}")
