"""What the module's one parameter is: phi' itself, or the token embeddings it is encoded from.

- :class:`FreeNull` (``null_parameterisation="embedding"``, the paper's and the
  default): the parameter *is* phi', free to move anywhere in the text
  encoder's output space and beyond it.
- :class:`TextManifoldNull` (``"text_manifold"``, beyond the paper): the
  parameter is e', the empty prompt's input token embeddings, and
  ``phi' = text_encoder(e')``. phi' then cannot leave the set of outputs the
  encoder can produce, which tests the paper's "semantic manifold" argument
  directly. Each inner step runs the text encoder forward and backward.

Both give :meth:`phi` (the packed phi' the denoiser sees, with gradients
flowing to the parameter) and :meth:`initial` (the parameter's start, at
which ``phi(initial) = phi``).
"""

from __future__ import annotations

from torch import Tensor

from .adapters import PipelineAdapter

__all__ = ["PARAMETERISATIONS", "FreeNull", "TextManifoldNull", "make_parameterisation"]


class FreeNull:
    """phi' is the parameter (``phi(p) = p``)."""

    name = "embedding"

    def __init__(self, adapter: PipelineAdapter, negative_prompt: str | None) -> None:
        self.adapter = adapter
        self.negative_prompt = negative_prompt

    def initial(self, null_packed: Tensor) -> Tensor:
        """The null embedding phi itself."""
        return null_packed

    def phi(self, parameter: Tensor) -> Tensor:
        """The parameter, unchanged."""
        return parameter


class TextManifoldNull(FreeNull):
    """phi' is the text encoder's output for the parameter e' (input token embeddings).

    ``phi'(e') = text_encoder(e')``, with e' starting at the token embeddings of
    the negative prompt (``""``), so ``phi'(e'_0) = phi``. Implemented by the
    adapter (:meth:`~nulltta.adapters.PipelineAdapter.encode_null_from_tokens`).
    """

    name = "text_manifold"

    def initial(self, null_packed: Tensor) -> Tensor:
        """The negative prompt's token embeddings, one row per trajectory."""
        tokens = self.adapter.null_token_embeddings(self.negative_prompt)
        return tokens.repeat(null_packed.shape[0], *[1] * (tokens.ndim - 1)).float()

    def phi(self, parameter: Tensor) -> Tensor:
        """``text_encoder(e')``, packed as the denoiser's null embedding."""
        encoded = self.adapter.encode_null_from_tokens(parameter, self.negative_prompt)
        return self.adapter.pack_null(encoded)


PARAMETERISATIONS = {cls.name: cls for cls in (FreeNull, TextManifoldNull)}


def make_parameterisation(
    name: str, adapter: PipelineAdapter, negative_prompt: str | None
) -> FreeNull:
    """The parameterisation called ``name`` (see :data:`PARAMETERISATIONS`)."""
    return PARAMETERISATIONS[name](adapter, negative_prompt)
