"""The White Box of LORE: the trainable modules that look at locality (spec §1–3)."""
from .kla import KnowledgeLocalityAttention, top_n_filter
from .lin import LocalityInteraction, knn_graph, max_relative
from .prompt_generator import PromptGenerator
from .public import PublicKnowledgeLocalityAttention, PublicLocalityInteraction, PublicPromptGenerator

__all__ = [
    "KnowledgeLocalityAttention",
    "LocalityInteraction",
    "PromptGenerator",
    "PublicKnowledgeLocalityAttention",
    "PublicLocalityInteraction",
    "PublicPromptGenerator",
    "knn_graph",
    "max_relative",
    "top_n_filter",
]
