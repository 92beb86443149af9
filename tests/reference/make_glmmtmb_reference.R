# The exact Laplace log-likelihood from glmmTMB (TMB's inner Newton iterated to convergence) for the
# GLMMs whose lme4 value sits below it because of lme4's PIRLS tolerance (issue 17, item 7):
# the bundled cbpp model, the 30 small binary data sets of tests/reference/small_binary/, and
# grouseticks' intercept-only model (the null model of R², where lme4 stops 3.8e-3 short).
# mixedmodels reports the exact Laplace deviance, so it matches these to ~1e-9 and lme4's logLik
# from above. Run from the repository root: Rscript tests/reference/make_glmmtmb_reference.R
suppressPackageStartupMessages({library(glmmTMB); library(lme4); library(jsonlite)})
fit <- function(formula, d, family = binomial) {
  m <- glmmTMB(formula, data = d, family = family)
  list(loglik = as.numeric(logLik(m)), beta = unname(fixef(m)$cond),
       se = unname(sqrt(diag(vcov(m)$cond))),
       sd = unname(attr(VarCorr(m)$cond[[1]], "stddev")))
}
out <- list(cbpp_laplace = fit(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp))
grouse <- read.csv("src/mixedmodels/presentation/datasets/grouseticks.csv")
grouse$BROOD <- factor(grouse$BROOD); grouse$LOCATION <- factor(grouse$LOCATION); grouse$YEAR <- factor(grouse$YEAR)
out$grouseticks <- fit(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), grouse, family = poisson)
out$grouseticks_null <- fit(TICKS ~ 1 + (1 | BROOD) + (1 | LOCATION), grouse, family = poisson)
for (k in 0:29) {
  f <- sprintf("sim_%02d", k)
  d <- read.csv(file.path("tests/reference/small_binary", paste0(f, ".csv")))
  d$g <- factor(d$g)
  out[[f]] <- fit(y ~ x + (1 | g), d)
}
out$glmmTMB_version <- as.character(packageVersion("glmmTMB"))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/glmmtmb_reference.json")
