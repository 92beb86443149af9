# lme4's fits of the partially crossed design (tests/reference/partially_crossed.csv, made by
# make_partially_crossed_data.py), whose school block BlockedFactor factors sparse. Records θ, β,
# their SEs, σ and logLik (REML for the LMMs, as lme4's default; Laplace for the GLMM, with lme4's
# defaults and with tight tolerances). The three-level fits add (1 | district) (schools nested in
# districts, pupils crossing district boundaries): a sparse middle Schur block.
# Run from the repository root: Rscript tests/reference/make_partially_crossed_reference.R
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
d <- read.csv("tests/reference/partially_crossed.csv")
d$pupil <- factor(d$pupil); d$school <- factor(d$school); d$district <- factor(d$district)
record <- function(m) list(theta = unname(getME(m, "theta")), beta = unname(fixef(m)),
                           se = unname(sqrt(diag(as.matrix(vcov(m))))), sigma = sigma(m),
                           loglik = as.numeric(logLik(m)))
out <- list(
  intercepts = record(lmer(y ~ x + (1 | pupil) + (1 | school), data = d)),
  slopes = record(lmer(y ~ x + (1 | pupil) + (x | school), data = d)),
  intercepts_ml = record(lmer(y ~ x + (1 | pupil) + (1 | school), data = d, REML = FALSE)),
  binomial = record(glmer(passed ~ x + (1 | pupil) + (1 | school), data = d, family = binomial)),
  # lme4's defaults stop short of the Laplace optimum here; tightened, it reaches it
  binomial_tight = record(glmer(passed ~ x + (1 | pupil) + (1 | school), data = d, family = binomial,
                                control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                                                       optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))),
  # three levels: the school block is the middle one, factored sparse with the district block below
  three_level = record(lmer(y3 ~ x + (1 | pupil) + (1 | school) + (1 | district), data = d)),
  three_level_ml = record(lmer(y3 ~ x + (1 | pupil) + (1 | school) + (1 | district), data = d,
                               REML = FALSE)),
  binomial_three_tight = record(glmer(passed ~ x + (1 | pupil) + (1 | school) + (1 | district), data = d,
                                      family = binomial,
                                      control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-10,
                                                             optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))),
  lme4_version = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/partially_crossed_reference.json")
