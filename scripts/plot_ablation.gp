# plot_ablation.gp — validation loss against bits per element, one line per method, for
# scripts/ablate_ptq_vs_qat.sh. Formats are placed in order of their bits (labels give format and
# bits/element); the dashed line is the FP32 baseline.
#   gnuplot -e "datafile='ablation_plot.dat'; outfile='ablation.png'; baseline=2.1" plot_ablation.gp
if (!exists("datafile")) datafile = 'ablation_plot.dat'
if (!exists("outfile")) outfile = 'ablation.png'
set terminal pngcairo size 1100,650 enhanced font 'DejaVu Sans,11' noenhanced
set output outfile
set title 'PTQ vs QAT: validation loss by MX format'
set xlabel 'format (bits per element incl. the shared E8M0 scale)'
set ylabel 'validation loss (nats/token)'
set key outside right top
set grid ytics
set xtics rotate by -30 noenhanced
set datafile missing 'NaN'
ncols = system(sprintf("head -n 1 '%s' | wc -w", datafile)) + 0
bitsof(f) = f eq 'mxint8' || f eq 'mxfp8_e4m3' || f eq 'mxfp8_e5m2' ? '8.25' : \
            f eq 'mxint6' || f eq 'mxfp6_e3m2' || f eq 'mxfp6_e2m3' ? '6.25' : \
            f eq 'mxint2' ? '2.25' : '4.25'
if (exists("baseline")) set arrow from graph 0, first baseline to graph 1, first baseline nohead dt 2 lc rgb '#555555'
if (exists("baseline")) set label 'fp32 baseline' at graph 0.01, first baseline offset 0,0.6 tc rgb '#555555'
plot for [i=2:ncols] datafile using 0:i:xtic(sprintf('%s (%s)', strcol(1), bitsof(strcol(1)))) \
     with linespoints lw 2 pt (i % 7) + 1 title columnheader(i)
