# Reference values for level-2 and categorical variables in mixedmodels' pan/fcs imputation
# (tests/test_missing_l2cat.py). Adds to mitml's studentratings (tests/reference/studentratings.csv):
#   - SchQual: a level-2 variable (one value per school), missing for 12 of the 50 schools, MAR on the
#     school's mean reading achievement;
#   - SexNA: Sex with holes (every 9th row, 0-based, and more where ReadDis is high: MAR).
# Imputes with mitml's jomoImpute (joint model: level-2 variables and latent normal categorical
# variables) and with mice (2l.pan, 2l.bin, 2lonly.norm); fits lmer on each imputed data set and pools
# with mitml's testEstimates. Pooled estimates and summaries of the imputed values are written to
# missing_l2cat_reference.json; the tests compare ours with them within Monte-Carlo error.
# Run from the repository root:  Rscript tests/reference/make_missing_l2cat_reference.R
suppressPackageStartupMessages({library(mitml); library(lme4); library(jsonlite); library(mice); library(jomo)})
out <- "tests/reference"
sr <- read.csv(file.path(out, "studentratings.csv"))
set.seed(2026)
ids <- sort(unique(sr$ID))
school <- data.frame(ID = ids)
mr <- tapply(sr$ReadAchiev, sr$ID, mean)[as.character(ids)]
school$SchQual <- round(as.numeric(scale(mr)) * 0.8 + rnorm(length(ids), sd = 0.6), 4)
p <- plogis(-1.4 + 1.2 * as.numeric(scale(mr)))
school$SchQual[order(-p * runif(length(ids)))[1:12]] <- NA
sr$SchQual <- school$SchQual[match(sr$ID, school$ID)]
rd <- ifelse(is.na(sr$ReadDis), 0, scale(sr$ReadDis))
holes <- ((seq_len(nrow(sr)) - 1) %% 9 == 0) | (runif(nrow(sr)) < plogis(-3 + 1.5 * rd))
sr$SexNA <- ifelse(holes, NA, sr$Sex)
write.csv(sr[, c("ID", "Sex", "SexNA", "ReadAchiev", "ReadDis", "SES", "SchQual")],
          file.path(out, "missing_l2cat_data.csv"), row.names = FALSE, na = "")
sr$SexNA <- factor(sr$SexNA, levels = c("Boy", "Girl"))

M <- 20
analysis <- function(impl) {
  fits <- with(impl, lmer(ReadAchiev ~ ReadDis + SES + SexNA + SchQual + (1 | ID)))
  te <- testEstimates(fits, extra.pars = TRUE)
  est <- te$estimates
  list(names = rownames(est), estimate = unname(est[, "Estimate"]), se = unname(est[, "Std.Error"]),
       riv = unname(est[, "RIV"]),
       extra_names = rownames(te$extra.pars), extra = unname(te$extra.pars[, "Estimate"]))
}
summ <- function(impl, miss_sex, miss_l2) {
  list(girl_share = mean(sapply(impl, function(d) mean(d$SexNA[miss_sex] == "Girl"))),
       schqual_mean = mean(sapply(impl, function(d) mean(d$SchQual[miss_l2]))),
       schqual_sd = mean(sapply(impl, function(d) sd(tapply(d$SchQual[miss_l2], d$ID[miss_l2], mean)))))
}
miss_sex <- is.na(sr$SexNA); miss_l2 <- is.na(sr$SchQual)

# jomo (mitml's jomoImpute): level 1 ReadDis, SES, SexNA; level 2 SchQual
t0 <- proc.time()[["elapsed"]]
fml <- list(ReadDis + SES + SexNA ~ ReadAchiev + (1 | ID), SchQual ~ 1)
jimp <- jomoImpute(sr[, c("ID", "ReadAchiev", "ReadDis", "SES", "SexNA", "SchQual")], formula = fml,
                   n.burn = 2000, n.iter = 100, m = M, seed = 7, silent = TRUE)
jomo_seconds <- proc.time()[["elapsed"]] - t0
jl <- mitmlComplete(jimp, "all")
jomo_res <- c(analysis(jl), summ(jl, miss_sex, miss_l2), seconds = jomo_seconds)

# mice: 2l.pan for ReadDis and SES, 2l.bin for SexNA, 2lonly.norm for SchQual
md <- sr[, c("ID", "ReadAchiev", "ReadDis", "SES", "SexNA", "SchQual")]
md$ID <- as.integer(factor(md$ID))
meth <- make.method(md)
meth[c("ReadDis", "SES")] <- "2l.pan"; meth["SexNA"] <- "2l.bin"; meth["SchQual"] <- "2lonly.norm"
pred <- make.predictorMatrix(md)
pred[, "ID"] <- -2
diag(pred) <- 0
pred["ID", ] <- 0
t0 <- proc.time()[["elapsed"]]
mimp <- mice(md, m = M, method = meth, predictorMatrix = pred, maxit = 20, seed = 11, printFlag = FALSE)
mice_seconds <- proc.time()[["elapsed"]] - t0
ml <- as.mitml.list(lapply(seq_len(M), function(i) { d <- complete(mimp, i); d$ID <- sr$ID; d }))
mice_res <- c(analysis(ml), summ(ml, miss_sex, miss_l2), seconds = mice_seconds)

# the full data (Sex without holes; SchQual and the others still incomplete) is not a reference: the
# tests compare imputations with imputations
res <- list(m = M, n_missing_sex = sum(miss_sex), n_missing_schools = sum(is.na(school$SchQual)),
            jomo = jomo_res, mice = mice_res)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(out, "missing_l2cat_reference.json"))
cat("jomo seconds:", jomo_seconds, " mice seconds:", mice_seconds, "\n")
