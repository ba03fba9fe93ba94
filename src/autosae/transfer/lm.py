"""The language-model side of a transfer, all in the trusted process: the model, its token
dataset split into training and held-out evaluation prompts, SAELens's ActivationsStore for
the training activations, and SAELens's own evaluation of a trained SAE as SAELens loads it
from the folder the harness wrote (cfg.json and safetensors, checked by autosae.sae.export):
the variant's code trains the SAE and never computes a number we report; it sees activations,
never the model, the tokens or the metrics."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from autosae.errors import AutosaeError, first_line
from autosae.transfer.settings import TransferSettings

RNG_LOCK = threading.Lock()


class RunRng:
    """One run's own state of torch's global CPU generator (which SAELens's stores shuffle
    with), swapped in under RNG_LOCK around each use: runs on several devices at once (one
    thread each) then draw their data exactly as they would alone, so that the variant and
    its parent at one (L0, seed) see the same activations in the same order."""

    def __init__(self, seed: int):
        with RNG_LOCK:
            saved = torch.get_rng_state()
            torch.manual_seed(seed)
            self.state = torch.get_rng_state()
            torch.set_rng_state(saved)

    @contextlib.contextmanager
    def active(self):
        with RNG_LOCK:
            saved = torch.get_rng_state()
            torch.set_rng_state(self.state)
            try:
                yield
            finally:
                self.state = torch.get_rng_state()
                torch.set_rng_state(saved)


def quiet_third_party() -> None:
    """TransformerLens and SAELens warn about a missing tokenizer and untyped datasets for
    every store; a transfer's log keeps to our own lines."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"(sae_lens|transformer_lens|datasets)(\..*)?")
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in ("sae_lens", "transformer_lens", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load_model(settings: TransferSettings, device: str, root: Path):
    """The model: a folder (config.json: a HookedTransformerConfig; model.safetensors: its
    weights, all or some, the config's seed drawing the others) or a name loaded by SAELens."""
    folder = Path(settings.model).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if (folder / "config.json").is_file():
        from safetensors.torch import load_file
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        try:
            cfg = HookedTransformerConfig(**json.loads((folder / "config.json").read_text()), device=device)
        except (TypeError, ValueError) as exc:
            raise AutosaeError(f"transfer model {folder}/config.json: not a HookedTransformerConfig ({exc})") from None
        model = HookedTransformer(cfg)
        weights = folder / "model.safetensors"
        if weights.is_file():  # all the weights, or some: the others stay as the config's seed drew them
            unknown = model.load_state_dict(load_file(weights, device=device), strict=False).unexpected_keys
            if unknown:
                raise AutosaeError(f"transfer model {weights}: no such weights in the model: {', '.join(unknown[:5])}")
        return model.eval()
    if "/" in settings.model and folder.parent.exists() and not folder.exists():
        raise AutosaeError(f"transfer model: no folder {folder}")
    from sae_lens.load_model import load_model as saelens_load

    try:
        return saelens_load(settings.model_class, settings.model, device=device).eval()
    except Exception as exc:  # a hub error, an unknown name: the model cannot be had here
        raise AutosaeError(f"transfer model {settings.model!r} could not be loaded: {first_line(exc)}") from None


def load_tokens(settings: TransferSettings, root: Path, held_out_rows: int):
    """(training rows, evaluation rows): the first `held_out_rows` rows of the dataset are
    held out for evaluation and never trained on."""
    import datasets

    folder = Path(settings.dataset).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if folder.exists():
        try:
            data = datasets.load_from_disk(str(folder))
        except Exception as exc:
            raise AutosaeError(f"transfer dataset {folder}: not a saved dataset ({first_line(exc)})") from None
        if isinstance(data, datasets.DatasetDict):
            data = data["train"] if "train" in data else next(iter(data.values()))
        if len(data) <= held_out_rows:
            raise AutosaeError(
                f"transfer dataset {folder}: {len(data)} rows, but evaluation alone holds out {held_out_rows}"
            )
        return data.select(range(held_out_rows, len(data))), data.select(range(held_out_rows))
    try:
        data = datasets.load_dataset(settings.dataset, split="train", streaming=True)
    except Exception as exc:
        raise AutosaeError(f"transfer dataset {settings.dataset!r} could not be opened: {first_line(exc)}") from None
    return data.skip(held_out_rows), data.take(held_out_rows)


def d_in_of(model, settings: TransferSettings) -> int:
    """The width of the hook's activations (read from one forward pass)."""
    tokens = torch.zeros((1, min(settings.context_size, 4)), dtype=torch.long, device=model.cfg.device)
    try:
        _, cache = model.run_with_cache(tokens, names_filter=[settings.hook])
    except Exception as exc:
        raise AutosaeError(f"transfer hook {settings.hook!r}: {first_line(exc)}") from None
    if settings.hook not in cache:
        raise AutosaeError(f"transfer hook {settings.hook!r}: the model has no such hook point")
    act = cache[settings.hook]
    if act.ndim != 3:
        raise AutosaeError(
            f"transfer hook {settings.hook!r}: activations of shape {tuple(act.shape)}; pick a hook with one "
            f"vector per token (a residual stream, MLP or attention output)"
        )
    return int(act.shape[-1])


def activation_store(model, rows, settings: TransferSettings, d_in: int, device: str, training_tokens: int):
    """SAELens's ActivationsStore over `rows` (its buffer shuffles with torch's RNG: seed it first)."""
    from sae_lens import ActivationsStore

    return ActivationsStore(
        model=model,
        dataset=rows,
        streaming=not hasattr(rows, "__len__"),
        hook_name=settings.hook,
        hook_head_index=None,
        context_size=settings.context_size,
        d_in=d_in,
        n_batches_in_buffer=max(16, -(-4 * settings.batch_size // settings.context_size)),  # a mixing
        # buffer of n x context_size activations (SAELens's count), four training batches at least
        total_training_tokens=training_tokens,
        store_batch_size_prompts=8,
        train_batch_size_tokens=settings.batch_size,
        prepend_bos=settings.prepend_bos,
        normalize_activations="none",
        device=torch.device(device),
        dtype="float32",
    )


def eval_prompts(model, rows, settings: TransferSettings, d_in: int, device: str) -> list[torch.Tensor]:
    """The evaluation prompts, the same for every SAE of a transfer: eval_batches batches of
    eval_batch_prompts x context_size tokens (SAELens packs the held-out rows into windows)."""
    with RunRng(0).active(), dataset_errors(settings):
        store = activation_store(model, rows, settings, d_in, device, settings.eval_tokens())
        return [store.get_batch_tokens(settings.eval_batch_prompts).to(device) for _ in range(settings.eval_batches)]


@contextlib.contextmanager
def dataset_errors(settings: TransferSettings):
    """What SAELens's store raises on a dataset it cannot use (no text or token column, rows
    too short) as one line that names the dataset."""
    try:
        yield
    except AutosaeError:
        raise
    except Exception as exc:
        raise AutosaeError(f"transfer dataset {settings.dataset}: {first_line(exc)}") from None


def training_chunks(
    store, rng: RunRng, settings: TransferSettings, steps: int, chunk_batches: int
) -> Iterator[torch.Tensor]:
    """`steps` batches of activations from the store, chunk_batches batches at a time, drawn
    with the run's own generator."""
    done = 0
    while done < steps:
        n = min(chunk_batches, steps - done)
        with rng.active(), dataset_errors(settings):
            batches = [store.next_batch()[: settings.batch_size] for _ in range(n)]
        yield torch.cat(batches).float()
        done += n


class Prompts:
    """The evaluation prompts, as SAELens's evaluation asks an activation store for them."""

    def __init__(self, batches: list[torch.Tensor]):
        self.batches, self.at = batches, 0

    def get_batch_tokens(self, _n: int | None = None) -> torch.Tensor:
        batch = self.batches[self.at % len(self.batches)]
        self.at += 1
        return batch


def load_sae(sae_dir: Path, hook: str, device: str):
    """A run's SAE as SAELens loads it from its folder (cfg.json and safetensors: data only;
    our architecture's class from autosae.saelens), reading `hook`'s activations."""
    from sae_lens import SAE

    import autosae.saelens  # noqa: F401  (registers autosae's architecture with SAELens)

    sae = SAE.load_from_disk(str(sae_dir), device=device)
    sae.cfg.metadata.hook_name = hook
    sae.cfg.metadata.hook_head_index = None
    return sae.eval()


def hook_activations(model, tokens: torch.Tensor, hook: str) -> torch.Tensor:
    """(tokens, d_in): the hook's activations of a batch of prompts."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook], prepend_bos=False)
    return cache[hook].reshape(-1, cache[hook].shape[-1]).float()


def evaluate(sae, model, prompts: list[torch.Tensor], settings: TransferSettings) -> dict:
    """SAELens's evaluation of `sae` on the held-out prompts: explained variance, MSE, L0,
    dead latents (never firing on them), and the LM loss with the SAE spliced in against the
    clean and the zero-ablated model (ce_loss_score: the share of the loss recovered)."""
    from sae_lens.evals import get_downstream_reconstruction_metrics, get_sparsity_and_variance_metrics
    from sae_lens.training.activation_scaler import ActivationScaler

    special = []
    if getattr(model, "tokenizer", None) is not None:
        from sae_lens.evals import get_special_token_ids

        special = get_special_token_ids(model.tokenizer)
    with torch.no_grad():
        sparsity, features = get_sparsity_and_variance_metrics(
            sae,
            model,
            Prompts(prompts),
            ActivationScaler(),
            n_batches=len(prompts),
            compute_l2_norms=False,
            compute_sparsity_metrics=True,
            compute_variance_metrics=True,
            compute_featurewise_density_statistics=True,
            eval_batch_size_prompts=settings.eval_batch_prompts,
            model_kwargs={},
            ignore_tokens=special or None,
        )
        downstream = get_downstream_reconstruction_metrics(
            sae,
            model,
            Prompts(prompts),
            ActivationScaler(),
            compute_kl=True,
            compute_ce_loss=True,
            n_batches=len(prompts),
            eval_batch_size_prompts=settings.eval_batch_prompts,
            ignore_tokens=special or None,
        )
    density = features["feature_density"]
    out = {
        "explained_variance": sparsity["explained_variance"],
        "mse": sparsity["mse"],
        "cossim": sparsity["cossim"],
        "l0": sparsity["l0"],
        "dead_latents": sum(1 for d in density if d == 0),
        **{
            k: downstream[k]
            for k in ("ce_loss_score", "ce_loss_with_sae", "ce_loss_without_sae", "ce_loss_with_ablation")
        },
        "kl_div_score": downstream["kl_div_score"],
    }
    return {k: v if isinstance(v, int) else float(v) for k, v in out.items()}
