# Models without fixed effects (y ~ 0 + (1 | g)), which lme4 fits: found by bench/fuzz_formulas.py.
# Run from the repository root: Rscript tests/reference/make_no_fixef_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
m <- lmer(Reaction ~ 0 + (1 | Subject), sleepstudy)
g <- glmer(cbind(incidence, size - incidence) ~ 0 + (1 | herd), cbpp, family = binomial,
           control = glmerControl(tolPwrss = 1e-12))  # the exact Laplace optimum, as mixedmodels reports
out <- list(lmm = list(loglik = as.numeric(logLik(m)), theta = unname(getME(m, "theta")), sigma = sigma(m)),
            glmm = list(loglik = as.numeric(logLik(g)), theta = unname(getME(g, "theta"))),
            lme4_version = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/no_fixef_reference.json")
