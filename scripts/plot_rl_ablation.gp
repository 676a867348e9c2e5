# plot_rl_ablation.gp — held-out accuracy per arm and evaluation format as grouped bars, for
# scripts/ablate_rl_quant.sh. The data file has a header "arm FORMAT..." and one row per arm, the
# accuracy in %, NaN where the arm was not evaluated at that format (no bar).
#   gnuplot -e "datafile='rl_ablation_plot.dat'; outfile='rl_ablation.png'" plot_rl_ablation.gp
if (!exists("datafile")) datafile = 'rl_ablation_plot.dat'
if (!exists("outfile")) outfile = 'rl_ablation.png'
set terminal pngcairo size 1100,650 enhanced font 'DejaVu Sans,11' noenhanced
set output outfile
set title 'RL and quantization: held-out accuracy by arm and evaluation format'
set xlabel 'arm (how the policy was trained)'
set ylabel 'held-out exact-match accuracy (%)'
set yrange [0:105]
set key outside right top title 'evaluated in'
set grid ytics
set xtics rotate by -20 noenhanced
set datafile missing 'NaN'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
ncols = system(sprintf("head -n 1 '%s' | wc -w", datafile)) + 0
plot for [i=2:ncols] datafile using i:xtic(1) title columnheader(i)
