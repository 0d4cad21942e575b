"""The White Box of LORE: the trainable modules that look at locality (spec §1–3)."""
from lorevit.white_box.kla import KnowledgeLocalityAttention, top_n_filter
from lorevit.white_box.lin import LocalityInteraction, knn_graph, max_relative
from lorevit.white_box.prompt_generator import PromptGenerator
from lorevit.white_box.public import PublicKnowledgeLocalityAttention, PublicLocalityInteraction, PublicPromptGenerator

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
