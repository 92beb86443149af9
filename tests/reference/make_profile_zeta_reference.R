# lme4's profile() ζ for the variance parameters (and fixed effects) of two LMMs, for
# tests/test_plots_more.py: our ζ at lme4's own parameter values must equal lme4's .zeta.
# Run: Rscript tests/reference/make_profile_zeta_reference.R (from the repository root).
suppressMessages({library(lme4); library(jsonlite)})
ds <- "src/mixedmodels/presentation/datasets/"
sleep <- read.csv(paste0(ds, "sleepstudy.csv")); sleep$Subject <- factor(sleep$Subject)
dye <- read.csv(paste0(ds, "Dyestuff.csv")); dye$Batch <- factor(dye$Batch)
prof <- function(m) {
  p <- as.data.frame(profile(m, signames = FALSE))
  lapply(split(p, p$.par), function(s) list(value = s$.focal, zeta = s$.zeta))
}
out <- list(
  lme4_version = as.character(packageVersion("lme4")),
  sleepstudy = list(formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE,
                    profile = prof(lmer(Reaction ~ Days + (Days | Subject), sleep))),
  dyestuff = list(formula = "Yield ~ 1 + (1 | Batch)", reml = FALSE,
                  profile = prof(lmer(Yield ~ 1 + (1 | Batch), dye, REML = FALSE))))
write_json(out, "tests/reference/profile_zeta_reference.json", digits = 15, auto_unbox = TRUE, pretty = TRUE)
