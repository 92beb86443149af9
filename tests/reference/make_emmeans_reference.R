# Estimated marginal means and their contrasts from R's emmeans (with pbkrtest for Kenward-Roger
# and lmerTest for Satterthwaite df), for tests/test_emmeans.py.
# Run from this folder: Rscript make_emmeans_reference.R   (data read from ../../../shared/data, or $MM_SHARED_DATA)
suppressMessages({library(lme4); library(emmeans); library(pbkrtest); library(lmerTest, warn.conflicts = FALSE)
  library(jsonlite)})
D <- function(f, ...) read.csv(file.path(Sys.getenv("MM_SHARED_DATA", "../../../shared/data"), f), ...)
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)
tab <- function(x, ...) {
  s <- as.data.frame(summary(x, ...))
  lapply(s, function(col) if (is.factor(col)) as.character(col) else col)
}
R <- list(versions = list(emmeans = as.character(packageVersion("emmeans")),
                          pbkrtest = as.character(packageVersion("pbkrtest")),
                          lmerTest = as.character(packageVersion("lmerTest")),
                          lme4 = as.character(packageVersion("lme4"))))
cake <- D("cake.csv")
cake$temperature <- factor(cake$temperature, levels = c(175, 185, 195, 205, 215, 225), ordered = TRUE)
cake$recipe <- factor(cake$recipe); cake$replicate <- factor(cake$replicate)
# a factor and a covariate (temp at its mean, or at= 200)
m1 <- lme4::lmer(angle ~ recipe * temp + (1 | recipe:replicate), cake)
e_kr <- emmeans(m1, "recipe", lmer.df = "kenward-roger")
e_sat <- emmeans(m1, "recipe", lmer.df = "satterthwaite")
e_asy <- emmeans(m1, "recipe", lmer.df = "asymptotic")
R$cake_temp <- list(
  formula = "angle ~ recipe * temp + (1 | recipe:replicate)",
  temp_mean = mean(cake$temp),
  kr = tab(e_kr), satterthwaite = tab(e_sat), asymptotic = tab(e_asy),
  kr_at190 = tab(emmeans(m1, "recipe", at = list(temp = 190), lmer.df = "kenward-roger")),
  kr_level90 = tab(e_kr, level = 0.90),
  pairs_kr_tukey = tab(pairs(e_kr, adjust = "tukey")),
  pairs_kr_holm = tab(pairs(e_kr, adjust = "holm")),
  pairs_sat_tukey = tab(pairs(e_sat, adjust = "tukey")),
  pairs_sat_bonferroni = tab(pairs(e_sat, adjust = "bonferroni")),
  pairs_asy_none = tab(pairs(e_asy, adjust = "none")),
  pairs_kr_tukey_ci = tab(pairs(e_kr, adjust = "tukey"), infer = c(TRUE, TRUE)))
# two factors: by= and averaging over the other factor with equal weights
m2 <- lme4::lmer(angle ~ recipe * temperature + (1 | recipe:replicate), cake)
e_by <- emmeans(m2, "recipe", by = "temperature", lmer.df = "kenward-roger")
e_t <- emmeans(m2, "temperature", lmer.df = "satterthwaite")
R$cake_by <- list(
  formula = "angle ~ recipe * temperature + (1 | recipe:replicate)",
  kr_by = tab(e_by), pairs_by_tukey = tab(pairs(e_by, adjust = "tukey")),
  pairs_by_holm = tab(pairs(e_by, adjust = "holm")),
  sat_temperature = tab(e_t), pairs_temperature_holm = tab(pairs(e_t, adjust = "holm")),
  pairs_temperature_tukey = tab(pairs(e_t, adjust = "tukey")))
# binomial GLMM: link and response scale, pairs as odds ratios, and regrid (delta method)
cbpp <- D("cbpp.csv"); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
# fitted by glmmTMB: the exact Laplace optimum and the Hessian of the exact Laplace deviance, which
# mixedmodels reports (lme4's optimum is that of its PIRLS-tolerance deviance, 2e-4 away in β even
# with a tight bobyqa)
suppressPackageStartupMessages(library(glmmTMB))
g <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
e_g <- emmeans(g, "period", df = Inf)  # asymptotic, as for glmer fits
R$cbpp <- list(
  formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", fixef = as.list(fixef(g)$cond), vcov = unname(as.matrix(vcov(g)$cond)),
  link = tab(e_g), response = tab(e_g, type = "response"),
  pairs_link_tukey = tab(pairs(e_g)),
  pairs_response_tukey = tab(pairs(e_g), type = "response"),
  pairs_response_tukey_ci = tab(pairs(e_g), type = "response", infer = c(TRUE, TRUE)),
  regrid = tab(regrid(e_g)),
  pairs_regrid_holm = tab(pairs(regrid(e_g), adjust = "holm")))
write_json(R, "emmeans_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
