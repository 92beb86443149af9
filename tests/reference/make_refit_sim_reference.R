# lme4 on a simulated Pixel response where a refit started at the original optimum can stop at a
# boundary local minimum: Pixel_sim126.csv is mixedmodels' m.simulate(seed=126) of the REML fit
# of Pixel.csv, written once with
#   pd.DataFrame({"pixel_sim": m.simulate(seed=126)}).to_csv("Pixel_sim126.csv", index=False,
#                                                            float_format="%.17g")
# Run: Rscript make_refit_sim_reference.R  (needs r-cran-lme4, r-cran-jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
pix <- read.csv("Pixel.csv"); pix$Dog <- factor(pix$Dog); pix$Side <- factor(pix$Side)
f <- "pixel ~ day + I(day^2) + (day | Dog) + (1 | Side:Dog)"
m <- lmer(as.formula(f), pix)
y <- read.csv("Pixel_sim126.csv")$pixel_sim
d2 <- pix; d2$pixel <- y
m1 <- lmer(as.formula(f), d2)
m2 <- suppressWarnings(refit(m, y))
out <- list(formula = f, loglik = as.numeric(logLik(m1)), theta = unname(getME(m1, "theta")),
            fixef = unname(fixef(m1)), sigma = sigma(m1), refit_loglik = as.numeric(logLik(m2)),
            refit_theta = unname(getME(m2, "theta")),
            lme4_version = as.character(packageVersion("lme4")))
write_json(out, "refit_sim_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
