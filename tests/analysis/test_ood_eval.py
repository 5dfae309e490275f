"""`evaluate_ood`: the model and the baselines see the condition's queries, seeded per condition."""

import numpy as np
import torch

import icsim
from icsim.analysis.ood import evaluate_ood, ood_baselines, ood_predictions
from icsim.models import ModelConfig, Transformer, get_format
from icsim.tasks.ood import condition_seed, sample_ood

D, N = 3, 7


def tiny():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(n_dims_in=D + 1, n_layer=1, n_head=1, n_embd=8))
    task = icsim.tasks.get("linear_regression", dim=D)
    return model.eval(), get_format("interleaved", dim=D), task


def test_model_and_baselines_predict_the_condition_s_queries():
    model, fmt, task = tiny()
    g = torch.Generator().manual_seed(condition_seed(0, "orthogonal"))
    ood = sample_ood(task, "orthogonal", 16, N, generator=g)
    preds = ood_predictions(model, fmt, ood, ood_baselines(task))
    xs, ys, q, qy = (t.numpy() for t in (ood.batch.xs, ood.batch.ys, ood.queries, ood.query_ys))
    # least squares' min-norm fit lies in the span of the context: 0 on an orthogonal query
    np.testing.assert_allclose(preds["least_squares"].numpy(), 0, atol=1e-5)
    for k in ood.ks:  # the model on tokens built here: [x_0;0], [0;y_0], ..., [q_k;0]
        tok = np.zeros((16, 2 * k + 1, D + 1), np.float32)
        tok[:, 0:-1:2, :D], tok[:, 1::2, D], tok[:, -1, :D] = xs[:, :k], ys[:, :k], q[:, k]
        want = model(torch.from_numpy(tok))[:, -1, 0].detach().numpy()
        np.testing.assert_allclose(preds["transformer"][:, k].numpy(), want, atol=1e-5)
    res = evaluate_ood(model, fmt, task, N, prompts=16, conditions=["orthogonal"])
    err = ((preds["least_squares"].numpy() - qy[:, :D]) ** 2 / D).mean(0)
    np.testing.assert_allclose(res["orthogonal"]["curves"]["least_squares"]["y"], err, rtol=1e-5)
    assert res["orthogonal"]["curves"]["transformer"]["x"] == [0, 1, 2]


def test_seeded_per_condition_and_noisy_tasks_get_ridge():
    model, fmt, task = tiny()
    a = evaluate_ood(model, fmt, task, N, prompts=16, seed=5, conditions=["overlapping", "skewed"])
    b = evaluate_ood(model, fmt, task, N, prompts=16, seed=5, conditions=["skewed"])
    assert a["skewed"] == b["skewed"]
    c = evaluate_ood(model, fmt, task, N, prompts=16, seed=6, conditions=["skewed"])
    assert c["skewed"]["curves"]["transformer"]["y"] != b["skewed"]["curves"]["transformer"]["y"]
    ls = np.array(a["overlapping"]["curves"]["least_squares"]["y"])
    assert ls[1:].max() < 1e-8  # noiseless: the query is a context point, fitted exactly
    noisy = icsim.tasks.get("linear_regression", dim=D, noise_std=0.5, w_scale=2.0)
    assert ood_baselines(noisy)["ridge"]["params"]["alpha"] == 0.0625
    assert "ridge" not in ood_baselines(task)
