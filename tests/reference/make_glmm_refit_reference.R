# lme4's fresh glmer fits of five simulated cbpp responses (tests/reference/cbpp_refit_sim.csv:
# counts drawn from the cbpp fit's probabilities and a new herd effect, seeds 100-104, numpy),
# for tests/test_refit.py's GLMM refit test. Records logLik, θ and β per response, with lme4's
# defaults and with tight tolerances (the defaults stop early on sim4, with a convergence warning).
# Run from the repository root: Rscript tests/reference/make_glmm_refit_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("tests/reference/cbpp_refit_sim.csv")
d$herd <- factor(d$herd, levels = as.character(1:15)); d$period <- factor(d$period, levels = as.character(1:4))
fits <- lapply(paste0("sim", 1:5), function(col) {
  d$k <- d[[col]]
  rec <- function(m) list(loglik = as.numeric(logLik(m)), theta = unname(getME(m, "theta")),
                          beta = unname(fixef(m)))
  f <- cbind(k, size - k) ~ period + (1 | herd)
  tight <- glmer(f, data = d, family = binomial,
                 control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                                        optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
  c(rec(suppressWarnings(glmer(f, data = d, family = binomial))), list(tight = rec(tight)))
})
names(fits) <- paste0("sim", 1:5)
writeLines(toJSON(c(fits, list(lme4_version = as.character(packageVersion("lme4")))), digits = NA,
                  auto_unbox = TRUE, pretty = TRUE), "tests/reference/glmm_refit_reference.json")
