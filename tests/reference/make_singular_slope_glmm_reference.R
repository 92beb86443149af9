# lme4's fit of a binomial GLMM with a random slope whose fit is singular (the slope's θ on its
# bound: correlation ±1), for test_glmm.py's check of its fixed effects' SEs, which lme4 takes
# from the finite-difference Hessian over (θ, β). Data: tests/reference/singular_slope_glmm.csv,
# 600 rows, 25 groups, random intercepts only (numpy seed 1: y ~ Bernoulli(logit⁻¹(-0.3 + 0.5 x
# + b_g)), b_g ~ N(0, 0.8²)). lme4 with tight tolerances (its defaults stop just short of the
# bound and miss the singular optimum by 2e-4 in logLik).
# Run from the repository root: Rscript tests/reference/make_singular_slope_glmm_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("tests/reference/singular_slope_glmm.csv"); d$g <- factor(d$g)
m <- glmer(y ~ x + (1 + x | g), d, family = binomial,
           control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                                  optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
out <- list(theta = unname(getME(m, "theta")), beta = unname(fixef(m)),
            se = unname(sqrt(diag(as.matrix(vcov(m))))), loglik = as.numeric(logLik(m)),
            singular = isSingular(m), lme4_version = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/singular_slope_glmm_reference.json")
