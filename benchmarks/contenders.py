"""The contenders of the benchmark, each behind the same small interface.

``make(name, config, data)`` returns an object with

- ``epoch()``: one training epoch over the data (shuffled mini-batches, or one
  full-batch step), returning nothing;
- ``predict(X)``: class predictions for X (for throughput and accuracy).

Each contender runs in its own worker process (see ``run.py``), so no two
libraries' thread pools share a process.
"""

from __future__ import annotations

import numpy as np


def products(sizes, B):
    """The matrix products one training step needs, as (m, k, n) shapes with the
    augmented inputs of eq. (11): forward z = h W for each layer, the weight gradient
    h^T delta for each layer, and delta W^T for every layer but the first."""
    L = len(sizes) - 1
    shapes = [(B, sizes[l - 1] + 1, sizes[l]) for l in range(1, L + 1)]
    shapes += [(sizes[l - 1] + 1, B, sizes[l]) for l in range(1, L + 1)]
    shapes += [(B, sizes[l], sizes[l - 1]) for l in range(2, L + 1)]
    return shapes


def step_flops(sizes, B):
    return sum(2 * m * k * n for m, k, n in products(sizes, B))


class Floor:
    """The GEMM floor: the same matrix products as a training step, nothing else.

    The first layer reads each batch from the data set itself (consecutive rows of
    an augmented copy), as any trainer must read its input from memory; nothing is
    gathered, shuffled or updated.
    """

    def __init__(self, config, X, y):
        sizes, B, N = config["sizes"], config["batch"], X.shape[0]
        self.N, self.B = N, min(B, N)
        dt = np.float32
        rng = np.random.default_rng(0)
        L = len(sizes) - 1
        self.L = L
        self.W = [None] + [rng.random((sizes[l - 1] + 1, sizes[l]), dtype=dt) for l in range(1, L + 1)]
        self.G = [None] + [np.empty_like(w) for w in self.W[1:]]
        self.X = np.ones((N, X.shape[1] + 1), dt)
        self.X[:, :-1] = X
        # ordinary values everywhere: uninitialized memory can hold denormals, which are slow
        self.h = [rng.random((self.B, s + 1), dtype=dt) for s in sizes[:-1]]
        self.z = [None] + [np.zeros((self.B, s), dt) for s in sizes[1:]]
        self.d = [None] + [rng.random((self.B, s), dtype=dt) * 1e-3 for s in sizes[1:]]

    def epoch(self):
        L, W, G, h, z, d = self.L, self.W, self.G, self.h, self.z, self.d
        for start in range(0, self.N, self.B):
            b = min(self.B, self.N - start)
            h[0] = self.X[start:start + b]
            for l in range(1, L + 1):
                np.matmul(h[l - 1][:b], W[l], out=z[l][:b])
            for l in range(L, 0, -1):
                np.matmul(h[l - 1][:b].T, d[l][:b], out=G[l])
                if l > 1:
                    np.matmul(d[l][:b], W[l][:-1].T, out=d[l - 1][:b])

    def predict(self, X):
        return None


class Deltaprop:
    def __init__(self, config, X, y):
        import deltaprop as dp

        self.net = dp.Network(config["sizes"], activation="relu", likelihood="categorical", seed=0)
        opt = {"sgd": lambda: dp.SGD(config["lr"]), "adam": lambda: dp.Adam(config["lr"]),
               "nesterov": lambda: dp.Nesterov(config["lr"], momentum=0.9)}[config["optimizer"]]()
        decay = config.get("decay")
        # the trainer behind deltaprop.train, driven one epoch at a time (Trainer.run continues)
        self.trainer = dp.Trainer(self.net, X, y, settings=dp.TrainSettings(
            optimizer=opt, batch_size=config["batch"], schedule=dp.Exponential(decay) if decay else None, seed=0,
            kernels=config.get("kernels")))

    def epoch(self):
        self.trainer.run(1)

    def predict(self, X):
        return self.net.predict(X)


class Torch:
    def __init__(self, config, X, y):
        import torch

        self.torch = torch
        torch.manual_seed(0)
        sizes = config["sizes"]
        layers = []
        for l in range(1, len(sizes)):
            layers.append(torch.nn.Linear(sizes[l - 1], sizes[l]))
            if l < len(sizes) - 1:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
        self.B = min(config["batch"], len(X))
        self.full = self.B == len(X)
        params, lr = self.model.parameters(), config["lr"]
        self.opt = {"sgd": lambda: torch.optim.SGD(params, lr=lr),
                    "adam": lambda: torch.optim.Adam(params, lr=lr),
                    "nesterov": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True),
                    }[config["optimizer"]]()
        self.schedule = (torch.optim.lr_scheduler.ExponentialLR(self.opt, config["decay"])
                         if config.get("decay") else None)
        self.loss = torch.nn.CrossEntropyLoss()

    def epoch(self):
        torch, model, opt = self.torch, self.model, self.opt
        n = len(self.X)
        perm = torch.arange(n) if self.full else torch.randperm(n)
        for start in range(0, n, self.B):
            idx = perm[start:start + self.B]
            xb, yb = (self.X, self.y) if self.full else (self.X[idx], self.y[idx])
            opt.zero_grad(set_to_none=True)
            loss = self.loss(model(xb), yb)
            loss.backward()
            opt.step()
        if self.schedule is not None:
            self.schedule.step()

    def predict(self, X):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).argmax(1).numpy()


class Jax:
    """A jax.jit-compiled training step (SGD or Adam written out), the batch gathered inside it."""

    def __init__(self, config, X, y):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        sizes, lr = config["sizes"], config["lr"]
        key = jax.random.PRNGKey(0)
        params = []
        for l in range(1, len(sizes)):
            key, sub = jax.random.split(key)
            lim = np.sqrt(6.0 / sizes[l - 1])
            params.append((jax.random.uniform(sub, (sizes[l - 1], sizes[l]), jnp.float32, -lim, lim),
                           jnp.zeros(sizes[l], jnp.float32)))
        self.params = params
        self.X, self.y = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
        self.B = min(config["batch"], len(X))
        self.rng = np.random.default_rng(0)

        def forward(params, x):
            for W, b in params[:-1]:
                x = jax.nn.relu(x @ W + b)
            W, b = params[-1]
            return x @ W + b

        def loss_fn(params, x, t):
            logits = forward(params, x)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), t[:, None], axis=1))

        grad_fn = jax.grad(loss_fn)
        self.lr, self.decay, self.epochs_done = lr, config.get("decay"), 0
        if config["optimizer"] == "sgd":
            self.state = None

            @jax.jit
            def step(params, state, X, Y, idx, lr):
                g = grad_fn(params, X[idx], Y[idx])
                return jax.tree_util.tree_map(lambda p, q: p - lr * q, params, g), state
        elif config["optimizer"] == "nesterov":  # v <- 0.9 v - lr g; p <- p + 0.9 v - lr g
            self.state = jax.tree_util.tree_map(jnp.zeros_like, params)

            @jax.jit
            def step(params, state, X, Y, idx, lr):
                g = grad_fn(params, X[idx], Y[idx])
                v = jax.tree_util.tree_map(lambda a, b: 0.9 * a - lr * b, state, g)
                params = jax.tree_util.tree_map(lambda p, a, b: p + 0.9 * a - lr * b, params, v, g)
                return params, v
        else:
            b1, b2, eps = 0.9, 0.999, 1e-8
            zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
            self.state = (zeros, zeros, jnp.zeros((), jnp.float32))

            @jax.jit
            def step(params, state, X, Y, idx, lr):
                m, v, t = state
                g = grad_fn(params, X[idx], Y[idx])
                t = t + 1
                m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
                v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
                corr = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                params = jax.tree_util.tree_map(
                    lambda p, a, b: p - lr * corr * a / (jnp.sqrt(b) + eps * jnp.sqrt(1 - b2 ** t)), params, m, v)
                return params, (m, v, t)

        self.step = step
        self.predict_fn = jax.jit(lambda params, x: jnp.argmax(forward(params, x), axis=1))

    def epoch(self):
        n = self.X.shape[0]
        perm = np.arange(n) if self.B == n else self.rng.permutation(n)
        params, state = self.params, self.state
        lr = self.jnp.float32(self.lr * (self.decay ** self.epochs_done if self.decay else 1.0))
        for start in range(0, n, self.B):
            params, state = self.step(params, state, self.X, self.y, perm[start:start + self.B], lr)
        self.jax.block_until_ready(params)
        self.params, self.state = params, state
        self.epochs_done += 1

    def predict(self, X):
        return np.asarray(self.predict_fn(self.params, self.jnp.asarray(X)))


class Sklearn:
    def __init__(self, config, X, y):
        from sklearn.neural_network import MLPClassifier

        self.X, self.y = X, y
        self.classes = np.unique(y)
        nesterov = config["optimizer"] == "nesterov"
        self.lr, self.decay, self.epochs_done = config["lr"], config.get("decay"), 0
        self.model = MLPClassifier(
            hidden_layer_sizes=tuple(config["sizes"][1:-1]), activation="relu",
            solver="sgd" if nesterov else config["optimizer"], learning_rate_init=config["lr"],
            batch_size=min(config["batch"], len(X)), alpha=0.0, momentum=0.9 if nesterov else 0.0,
            nesterovs_momentum=nesterov, shuffle=True, random_state=0)

    def epoch(self):
        import warnings

        if self.decay and self.epochs_done:  # sklearn has no per-epoch exponential schedule:
            # set the learning rate of its (private) optimizer object between epochs
            self.model._optimizer.learning_rate = self.lr * self.decay ** self.epochs_done
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(self.X, self.y, classes=self.classes)
        self.epochs_done += 1

    def predict(self, X):
        return self.model.predict(X)


CONTENDERS = {"floor": Floor, "deltaprop": Deltaprop, "torch": Torch, "jax": Jax, "sklearn": Sklearn}


def make(name, config, X, y):
    return CONTENDERS[name](config, X, y)
