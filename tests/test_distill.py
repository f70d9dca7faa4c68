"""Distillation: the ensemble's averaged probabilities, the loss, and a student trained from teacher runs."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from audiocnn import bundle
from audiocnn.config import load_recipe
from audiocnn.datasets import make_splits
from audiocnn.datasets.images import clip_images
from audiocnn.errors import ConfigError
from audiocnn.training.cache import augmented_images
from audiocnn.training.cv import run_cv
from audiocnn.training.distill import distillation_loss, ensemble_probabilities
from audiocnn.training.fit import RandomCopy
from audiocnn.training.prepare import prepare
from audiocnn.training.teachers import teacher_targets
from conftest import SMOKE, TINY


def test_the_ensemble_averages_its_members_probabilities():
    calm = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    sure_and_wrong = torch.tensor([[-50.0, 0.0, 50.0], [0.0, 3.0, 0.0]])
    mean = ensemble_probabilities([calm, sure_and_wrong])
    torch.testing.assert_close(mean, (calm.softmax(-1) + sure_and_wrong.softmax(-1)) / 2)
    torch.testing.assert_close(mean.sum(-1), torch.ones(2))
    torch.testing.assert_close(ensemble_probabilities([calm]), calm.softmax(-1))
    with pytest.raises(ValueError):
        ensemble_probabilities([])


def test_the_distillation_loss_blends_the_labels_and_the_teachers():
    torch.manual_seed(0)
    student, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    teacher_logits = torch.randn(8, 5)
    teacher = teacher_logits.softmax(-1)
    hard = F.cross_entropy(student, labels, label_smoothing=0.1)
    torch.testing.assert_close(distillation_loss(student, labels, teacher, 0.0, 2.0, 0.1), hard)
    # The soft term at T = 2 is T² × KL between the temperature-softened distributions,
    # the teachers' softened from their probabilities as if from their logits.
    soft = 4 * F.kl_div((student / 2).log_softmax(-1), (teacher_logits / 2).softmax(-1), reduction="batchmean")
    torch.testing.assert_close(distillation_loss(student, labels, teacher, 0.3, 2.0, 0.1), 0.7 * hard + 0.3 * soft)
    # A student that already predicts the teachers' distribution has nothing left to learn from them.
    matching = teacher_logits.clone().requires_grad_()
    loss = distillation_loss(matching, labels, teacher, 1.0, 1.0)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6) and float(matching.grad.abs().max()) < 1e-6
    # Gradient descent on the soft term alone moves a student towards the teachers.
    moving = student.clone().requires_grad_()
    for _ in range(300):
        step = distillation_loss(moving, labels, teacher, 1.0, 1.0)
        (grad,) = torch.autograd.grad(step, moving)
        moving = (moving - 8.0 * grad).detach().requires_grad_()  # batchmean: 8 = a step of 1 per clip
    torch.testing.assert_close(moving.softmax(-1), teacher, atol=2e-3, rtol=0)


def test_random_copy_hands_each_version_of_a_clip_its_own_teacher_targets():
    n, copies = 5, 3
    originals = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)  # an image's value: 100 × version + clip
    versions = torch.stack([originals + 100 * (k + 1) for k in range(copies)])
    targets = torch.tensor([[[v, i] for i in range(n)] for v in range(copies + 1)], dtype=torch.float32)
    dataset = RandomCopy(originals, versions, torch.arange(n), targets)
    torch.manual_seed(0)
    seen = set()
    for draw in range(200):
        clip = draw % n
        image, label, target = dataset[clip]
        version, index = divmod(int(image.item()), 100)
        assert index == clip == int(label) and target.tolist() == [version, clip]
        seen.add(version)
    assert seen == {0, 1, 2, 3}


def test_distillation_refuses_mixup():
    with pytest.raises(ConfigError, match="train.distill does not combine with train.mixup"):
        load_recipe(SMOKE, [*TINY, "train.mixup=0.2", "train.distill.teachers=[runs/x]"])


@pytest.mark.slow
def test_a_student_learns_from_the_same_folds_models_of_its_teacher_runs(tones, tmp_path):
    cache = tmp_path / "cache"
    # A teacher with another frontend (fewer mel bands) than the student: it gets its own images
    # of the same seeded augmented copies.
    # One training thread: two spin against the other worker of `make test` (several times slower).
    teacher_recipe = load_recipe(SMOKE, [*TINY, "frontend.n_mels=32", "train.epochs=2",
                                         "train.waveform.copies=1", "train.waveform.gain_db=12", "train.waveform.p=1"])
    run_cv(teacher_recipe, tones, tmp_path / "teacher", folds=[1], cache_dir=cache, progress=False)
    student_recipe = load_recipe(SMOKE, [*TINY, "train.epochs=2", "train.waveform.copies=1",
                                         "train.waveform.gain_db=12", "train.waveform.p=1",
                                         f"train.distill.teachers=[{tmp_path / 'teacher'}]",
                                         "train.distill.weight=0.7", "train.distill.temperature=2"])
    prepared = prepare(student_recipe, tones, cache, progress=False)
    fold1 = make_splits(prepared.dataset, val_fraction=student_recipe.data.val_fraction,
                        seed=student_recipe.data.seed)[0]
    targets = teacher_targets(student_recipe, fold1, prepared, cache, progress=False)
    assert targets.shape == (2, len(fold1.train), 3)
    torch.testing.assert_close(targets.sum(-1), torch.ones(2, len(fold1.train)))
    # Version 0 is the teacher's prediction of each training clip's own image, in split order.
    teacher = bundle.load(tmp_path / "teacher" / "fold1" / "model")
    own = teacher.model.predict_images(clip_images(fold1.train, teacher.model.frontend, 1.0, None, progress=False))
    torch.testing.assert_close(targets[0], own, atol=1e-5, rtol=1e-4)
    # Version 1 is the teacher's prediction of each clip's first augmented copy, heard through
    # the teacher's own frontend (the same seeded waveform the student's copy was made from).
    teacher_copies = augmented_images(prepared.dataset.clips, teacher.model.frontend, 1.0, student_recipe.train.waveform,
                                      cache, progress=False)
    rows = [prepared.rows[clip.path] for clip in fold1.train]
    torch.testing.assert_close(targets[1], teacher.model.predict_images(teacher_copies[0][rows]), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(targets[1], targets[0])

    summary = run_cv(student_recipe, tones, tmp_path / "student", folds=[1], cache_dir=cache, progress=False)
    assert [fold["fold"] for fold in summary["folds"]] == [1]
    saved = json.loads((tmp_path / "student" / "recipe.json").read_text())
    assert saved["train"]["distill"]["teachers"] == [str(tmp_path / "teacher")]

    # A fold's teacher must be that fold's model: a missing fold, or a bundle (which may have
    # been trained on the test fold), is refused with the reason.
    with pytest.raises(ConfigError, match="has no fold2/model"):
        run_cv(student_recipe, tones, tmp_path / "student", folds=[2], cache_dir=cache, progress=False)
    as_bundle = load_recipe(SMOKE, [*TINY, f"train.distill.teachers=[{tmp_path / 'teacher' / 'fold1' / 'model'}]"])
    with pytest.raises(ConfigError, match="must be a cv run of the same folds"):
        run_cv(as_bundle, tones, tmp_path / "other", folds=[1], cache_dir=cache, progress=False)
