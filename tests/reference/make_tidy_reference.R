# broom.mixed's tidy/glance/augment for the sleepstudy LMM (REML and ML, with a few rows dropped
# for missing values) and the cbpp binomial GLMM, for tests/test_tidy.py.
# Run from this folder: Rscript make_tidy_reference.R   (data: the package's bundled CSVs)
suppressMessages({library(lme4); library(broom.mixed); library(jsonlite)})
D <- function(f) read.csv(file.path("../../src/mixedmodels/presentation/datasets", f))
frame <- function(x) { x <- as.data.frame(x); rownames(x) <- NULL; x }
out <- list(versions = list(lme4 = as.character(packageVersion("lme4")),
                            broom.mixed = as.character(packageVersion("broom.mixed"))))
sl <- D("sleepstudy.csv"); sl$Subject <- factor(sl$Subject)
m <- lmer(Reaction ~ Days + (Days | Subject), sl)
out$sleep <- list(
  fixed = frame(tidy(m, effects = "fixed", conf.int = TRUE)),
  fixed90 = frame(tidy(m, effects = "fixed", conf.int = TRUE, conf.level = 0.9)),
  ran_pars = frame(tidy(m, effects = "ran_pars")),
  ran_pars_profile = frame(tidy(m, effects = "ran_pars", conf.int = TRUE, conf.method = "profile")),
  ran_vals = frame(tidy(m, effects = "ran_vals", conf.int = TRUE)),
  ran_coefs = frame(tidy(m, effects = "ran_coefs")),
  glance = frame(glance(m)),
  augment = frame(augment(m)))
# lmerTest's Satterthwaite t tests: what m.pvalues gives for an LMM
lt <- coef(summary(lmerTest::lmer(Reaction ~ Days + (Days | Subject), sl)))
out$sleep$lmertest <- list(df = unname(lt[, "df"]), p = unname(lt[, "Pr(>|t|)"]))
mml <- lmer(Reaction ~ Days + (Days | Subject), sl, REML = FALSE)
out$sleep_ml <- list(glance = frame(glance(mml)))
# rows with a missing response: augment drops them (na.omit), as the fit does
sn <- sl; sn$Reaction[c(3, 50, 101)] <- NA
mn <- lmer(Reaction ~ Days + (Days | Subject), sn)
out$sleep_na <- list(glance = frame(glance(mn)), augment = frame(augment(mn)))
cb <- D("cbpp.csv"); cb$herd <- factor(cb$herd, levels = 1:15); cb$period <- factor(cb$period)
# PIRLS converged tightly (tolPwrss 1e-12): lme4's default tolerance stops it 2.8e-4 in logLik
# short of the exact Laplace optimum (glmmTMB's), which mixedmodels reports
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data = cb, family = binomial,
           control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
ag <- frame(suppressWarnings(augment(g)))
ag <- ag[, setdiff(names(ag), "cbind(incidence, size - incidence)")]
out$cbpp <- list(
  fixed = frame(tidy(g, effects = "fixed", conf.int = TRUE)),
  ran_pars = frame(tidy(g, effects = "ran_pars")),
  ran_vals = frame(tidy(g, effects = "ran_vals", conf.int = TRUE)),
  glance = frame(glance(g)),
  augment = ag)
writeLines(toJSON(out, digits = NA, na = "null", auto_unbox = TRUE, pretty = FALSE), "tidy_reference.json")
