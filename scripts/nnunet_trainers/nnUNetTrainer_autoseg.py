"""autoseg's CPU-sized nnU-Net trainers: nnUNetTrainer with fewer epochs and iterations, nothing
else changed. The fixture and measurement scripts copy this file into the throwaway venv's
nnunetv2/training/nnUNetTrainer/variants/, where nnU-Net finds trainers by class name."""
import torch

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class _AutosegShortTrainer(nnUNetTrainer):
    """nnUNetTrainer with `lengths(patch dims)` = (epochs, iterations, validation iterations)."""

    def lengths(self, n_dims: int) -> tuple:
        raise NotImplementedError

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device('cuda')):
        super().__init__(plans, configuration, fold, dataset_json, device)
        n_dims = len(self.configuration_manager.patch_size)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = self.lengths(n_dims)


class nnUNetTrainer_autosegFixture(_AutosegShortTrainer):
    """The model fixtures (scripts/make_nnunet_model_fixture.sh): 1 epoch of 10 iterations."""

    def lengths(self, n_dims: int) -> tuple:
        return 1, 10, 2


class nnUNetTrainer_autosegFixtureCascade(_AutosegShortTrainer):
    """The cascade fixture (scripts/make_nnunet_cascade_fixture.sh): 3 epochs of 30 iterations."""

    def lengths(self, n_dims: int) -> tuple:
        return 3, 30, 2


class nnUNetTrainer_autosegBench(_AutosegShortTrainer):
    """Issue 17's measurement (scripts/measure_nnunet_trained.py): 3 epochs of 20 iterations in
    2d, 2 epochs of 10 in 3d (an iteration takes ~10x longer there on a 2-core CPU)."""

    def lengths(self, n_dims: int) -> tuple:
        return (2, 10, 2) if n_dims == 3 else (3, 20, 5)
