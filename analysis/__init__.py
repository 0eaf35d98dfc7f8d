"""Evidence for why a method helps: weight geometry, the Tammes problem, generalization curves."""
from analysis.angles import (AngleHistogram, MinAngleTable, angle_histogram, angle_values,
                             cosine_matrix, filter_rows, min_angle_table, minimal_angles,
                             named_layers, pairwise_angles, plot_angle_histogram, plot_min_angles)
from analysis.generalization import (Gap, RefineSweep, accuracy_points, generalization_gap,
                                     load_history, plot_accuracy_scatter, plot_gap,
                                     plot_learning_curves, plot_refine_sweep, sweet_point)
from analysis.similarity import (count_above, filter_norms, plot_cosine_matrices,
                                 plot_filter_norms, plot_stable_ranks, stable_rank, stable_ranks)
# The solver itself, analysis.tammes.tammes, is not re-exported: the name would shadow the module.
from analysis.tammes import (MMA_TABLE1, TammesResult, TammesTable, known_optimum,
                             plot_tammes_table, tammes_table)

__all__ = [
    "AngleHistogram", "MinAngleTable", "angle_histogram", "angle_values", "cosine_matrix",
    "filter_rows", "min_angle_table", "minimal_angles", "named_layers", "pairwise_angles",
    "plot_angle_histogram", "plot_min_angles",
    "Gap", "RefineSweep", "accuracy_points", "generalization_gap", "load_history",
    "plot_accuracy_scatter", "plot_gap", "plot_learning_curves", "plot_refine_sweep", "sweet_point",
    "count_above", "filter_norms", "plot_cosine_matrices", "plot_filter_norms",
    "plot_stable_ranks", "stable_rank", "stable_ranks",
    "MMA_TABLE1", "TammesResult", "TammesTable", "known_optimum", "plot_tammes_table",
    "tammes_table",
]
