# glmmTMB's families beyond the GLM (issue 19): every count family on glmmTMB's Salamanders data
# (poisson, nbinom1, nbinom2, their zero-inflated versions and the hurdle models), a simulated
# beta model with and without a dispersion formula, a Tweedie model and a Gamma model with a
# dispersion formula. Records logLik, the coefficients of every part with their standard errors,
# the dispersion, the random-effect sd and predictions of each type on a few rows.
# Run from the repository root: Rscript tests/reference/make_glmmtmb_families_reference.R
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite)})
data(Salamanders, package = "glmmTMB")
sal <- Salamanders
write.csv(data.frame(site = as.character(sal$site), mined = as.character(sal$mined),
                     cover = sal$cover, sample = sal$sample, DOP = sal$DOP, Wtemp = sal$Wtemp,
                     DOY = sal$DOY, spp = as.character(sal$spp), count = sal$count),
          "src/mixedmodels/presentation/datasets/Salamanders.csv", row.names = FALSE)
sal$site <- factor(as.character(sal$site))  # the grouping's level order does not matter
rows <- c(1, 2, 50, 200, 300, 360)  # rows of every data set (360 simulated, 644 Salamanders)
coefs <- function(m, part) {
  v <- fixef(m)[[part]]
  if (length(v) == 0) return(NULL)
  # vcov(m)$disp is empty for an intercept-only dispersion: take every SE from TMB's sdreport
  fixed <- summary(m$sdr, "fixed")
  key <- c(cond = "beta", zi = "betazi", disp = "betad")[[part]]
  list(names = names(v), est = unname(v), se = unname(fixed[rownames(fixed) == key, 2]))
}
pred <- function(m, type) unname(predict(m, type = type)[rows])
fit <- function(formula, d, family, zi = ~0, disp = ~1) {
  m <- glmmTMB(formula, data = d, family = family, ziformula = zi, dispformula = disp)
  vc <- VarCorr(m)$cond
  out <- list(loglik = as.numeric(logLik(m)), df = attr(logLik(m), "df"),
              cond = coefs(m, "cond"), zi = coefs(m, "zi"), disp = coefs(m, "disp"),
              sigma = sigma(m), sd = unname(unlist(lapply(vc, function(s) attr(s, "stddev")))),
              cor = unname(unlist(lapply(vc, function(s) { r <- attr(s, "correlation"); r[lower.tri(r)] }))),
              aic = AIC(m), rows = rows, max_gradient = max(abs(m$sdr$gradient.fixed)),
              pred_response = pred(m, "response"), pred_link = pred(m, "link"),
              pred_cond = pred(m, "conditional"), pred_zprob = pred(m, "zprob"))
  if (stats::family(m)$family == "tweedie") out$power <- unname(family_params(m))
  out
}
f <- count ~ spp + mined + (1 | site)
zf <- ~ spp + mined
out <- list(
  poisson = fit(f, sal, poisson),
  nbinom1 = fit(f, sal, nbinom1),
  nbinom2 = fit(f, sal, nbinom2),
  zip = fit(f, sal, poisson, zi = zf),
  zinb1 = fit(f, sal, nbinom1, zi = zf),
  zinb2 = fit(f, sal, nbinom2, zi = zf),
  hurdle_poisson = fit(f, sal, truncated_poisson, zi = zf),
  hurdle_nbinom1 = fit(f, sal, truncated_nbinom1, zi = zf),
  hurdle_nbinom2 = fit(f, sal, truncated_nbinom2, zi = zf),
  nbinom2_disp = fit(f, sal, nbinom2, disp = ~ mined),   # a dispersion model for counts
  # two crossed terms (the dense factorization)
  zip_crossed = fit(count ~ mined + cover + (1 | site) + (1 | spp), sal, poisson, zi = ~ mined)
)
# a profile-likelihood interval (uniroot on the likelihood-ratio statistic)
ci <- confint(glmmTMB(f, sal, family = nbinom2), parm = "minedno", method = "uniroot")
out$profile_nbinom2_minedno <- unname(ci[1, 1:2])
# simulated continuous responses: 30 groups of 12, a covariate z
set.seed(19)
ng <- 30; per <- 12
g <- factor(rep(sprintf("g%02d", 1:ng), each = per)); z <- rnorm(ng * per)
b <- rnorm(ng, sd = 0.5)[as.integer(g)]
mu <- plogis(-0.3 + 0.8 * z + b); phi <- exp(2 + 0.6 * z)
ybeta <- rbeta(length(mu), mu * phi, (1 - mu) * phi)
mug <- exp(1 + 0.4 * z + b); cv <- exp(-0.7 + 0.3 * z)
ygamma <- rgamma(length(mug), shape = 1 / cv^2, scale = mug * cv^2)
# Tweedie (power 1.5, dispersion 1) as compound Poisson-gamma
p <- 1.5; phi_t <- 1.2; lam <- mug^(2 - p) / (phi_t * (2 - p)); sh <- (2 - p) / (p - 1)
sc <- phi_t * (p - 1) * mug^(p - 1); nn <- rpois(length(mug), lam)
ytw <- sapply(seq_along(nn), function(i) if (nn[i] == 0) 0 else sum(rgamma(nn[i], sh, scale = sc[i])))
ygauss <- 1 + 0.5 * z + b + rnorm(length(z), sd = exp(-0.2 + 0.4 * z))
# a correlated random slope (2 x 2 blocks of H), drawn after the others
b1 <- rnorm(ng, sd = 0.4)[as.integer(g)]
mus <- exp(0.5 + 0.3 * z + b + b1 * z)
yslope <- rnbinom(length(mus), size = 2, mu = mus)
sim <- data.frame(g = as.character(g), z = z, ybeta = ybeta, ygamma = ygamma, ytweedie = ytw,
                  ygauss = ygauss, yslope = yslope)
write.csv(sim, "tests/reference/glmmtmb_families_sim.csv", row.names = FALSE)
sim$g <- factor(sim$g)
out$beta <- fit(ybeta ~ z + (1 | g), sim, beta_family())
out$beta_disp <- fit(ybeta ~ z + (1 | g), sim, beta_family(), disp = ~ z)
out$gamma_disp <- fit(ygamma ~ z + (1 | g), sim, Gamma(link = "log"), disp = ~ z)
out$gaussian_disp <- fit(ygauss ~ z + (1 | g), sim, gaussian(), disp = ~ z)
out$tweedie <- fit(ytweedie ~ z + (1 | g), sim, tweedie())
out$nbinom2_slope <- fit(yslope ~ z + (1 + z | g), sim, nbinom2)
out$glmmTMB_version <- as.character(packageVersion("glmmTMB"))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/glmmtmb_families_reference.json")
