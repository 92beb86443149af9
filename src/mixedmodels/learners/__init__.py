"""Random effects inside machine learning: mixed-effects estimators around any scikit-learn learner."""
