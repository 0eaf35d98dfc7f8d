"""Evidence for why a method helps: weight geometry, the Tammes problem, generalization curves,
curvature and sharpness, memorization."""
from analysis.angles import (AngleHistogram, MinAngleTable, angle_histogram, angle_values,
                             cosine_array, cosine_matrix, filter_array, filter_rows, min_angle_table,
                             minimal_angles,
                             named_layers, pairwise_angles, plot_angle_histogram, plot_min_angles)
from analysis.curvature import (average_sharpness, convexity_map, convexity_ratio,
                                dense_hessian, epsilon_sharpness, extreme_eigenvalues, hessian_trace,
                                hessian_vector_product, min_eigenvalue, rho_sharpness,
                                top_eigenvalues)
from analysis.generalization import (Gap, RefineSweep, accuracy_points, generalization_gap,
                                     load_history, plot_accuracy_scatter, plot_gap,
                                     plot_learning_curves, plot_refine_sweep, sweet_point)
from analysis.similarity import (count_above, filter_norms, plot_cosine_matrices,
                                 plot_filter_norms, plot_stable_ranks, stable_rank, stable_ranks)
from analysis.hessian_directions import hessian_directions
from analysis.spectrum import hessian_diagonal, plot_spectral_density, spectral_density
from analysis.weight_spectra import fit_power_law, plot_weight_spectra, weight_spectra
from analysis.tammes_problem import (MMA_TABLE1, TammesResult, TammesTable, known_optimum,
                                     plot_tammes_table, tammes, tammes_table)

__all__ = [
    "AngleHistogram", "MinAngleTable", "angle_histogram", "angle_values", "cosine_array", "cosine_matrix",
    "filter_array", "filter_rows", "min_angle_table", "minimal_angles", "named_layers", "pairwise_angles",
    "plot_angle_histogram", "plot_min_angles",
    "average_sharpness", "convexity_map", "convexity_ratio", "dense_hessian", "epsilon_sharpness", "extreme_eigenvalues",
    "hessian_trace", "hessian_vector_product", "min_eigenvalue", "rho_sharpness", "top_eigenvalues",
    "Gap", "RefineSweep", "accuracy_points", "generalization_gap", "load_history",
    "plot_accuracy_scatter", "plot_gap", "plot_learning_curves", "plot_refine_sweep", "sweet_point",
    "count_above", "filter_norms", "plot_cosine_matrices", "plot_filter_norms",
    "plot_stable_ranks", "stable_rank", "stable_ranks",
    "MMA_TABLE1", "TammesResult", "TammesTable", "known_optimum", "plot_tammes_table",
    "tammes", "tammes_table",
    "hessian_directions", "hessian_diagonal", "plot_spectral_density", "spectral_density",
    "fit_power_law", "plot_weight_spectra", "weight_spectra",
]
