# lme4 profile-likelihood confidence intervals for GLMMs:
#   confint(glmer(...), method = "profile", oldNames = FALSE)
# cbpp (binomial; also nAGQ = 5 and a probit link) and grouseticks (Poisson, two crossed terms).
# R lme4 1.1-31. Run from this folder: Rscript make_glmm_profile_reference.R
# (data read from ../../../shared/data; factor columns as in shared/data/README.md)
suppressMessages({library(lme4); library(jsonlite)})
D <- function(f, ...) read.csv(file.path("../../../shared/data", f), ...)
num <- function(x) unname(as.numeric(x))
profile_ref <- function(m, data_name, formula) {
  t0 <- proc.time()[["elapsed"]]
  ci <- confint(m, method = "profile", oldNames = FALSE)
  el <- proc.time()[["elapsed"]] - t0
  list(data = data_name, formula = formula, family = family(m)$family,
       loglik = num(logLik(m)), theta = num(getME(m, "theta")), fixef = as.list(fixef(m)),
       level = 0.95, rows = rownames(ci), lower = num(ci[, 1]), upper = num(ci[, 2]),
       lme4_seconds = el)
}
R <- list()
cbpp <- D("cbpp.csv"); cbpp$herd <- factor(cbpp$herd)
cbpp$period <- factor(cbpp$period, levels = c(1, 2, 3, 4))
f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
R$cbpp <- profile_ref(glmer(as.formula(f), cbpp, family = binomial), "cbpp.csv", f)
# the same with adaptive Gauss-Hermite quadrature, and with a non-canonical link
R$cbpp_agq5 <- c(profile_ref(glmer(as.formula(f), cbpp, family = binomial, nAGQ = 5), "cbpp.csv", f),
                 list(nAGQ = 5))
R$cbpp_probit <- c(profile_ref(glmer(as.formula(f), cbpp, family = binomial(link = "probit")), "cbpp.csv", f),
                   list(link = "probit"))
gt <- D("grouseticks.csv")
for (v in c("INDEX", "BROOD", "YEAR", "LOCATION")) gt[[v]] <- factor(gt[[v]])
f <- "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"
R$grouseticks <- profile_ref(glmer(as.formula(f), gt, family = poisson), "grouseticks.csv", f)
write_json(R, "glmm_profile_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null")
cat("wrote", length(R), "references\n")
