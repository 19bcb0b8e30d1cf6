package plot

import (
	"fmt"
	"image/color"
	"io"
	"math"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Size of every chart.
const (
	Width  = 8 * vg.Inch
	Height = 4 * vg.Inch
)

// Chart is lines over one x axis.
type Chart struct {
	Title, XLabel, YLabel string
	// TimeX says the x values are seconds of a run: the axis is marked at
	// whole seconds, or at whole minutes when it spans more than
	// MinutesAfter, and " (s)" or " (min)" is added to XLabel (TimeTicks).
	TimeX bool
	LogY  bool // a log y axis; points at or below 0 are left out
	Lines []Line
	Marks []Mark
}

// Line is one series. NaN points (not measured) break the line.
type Line struct {
	Name   string
	X, Y   []float64
	Color  color.Color
	Dashed bool
}

// Mark is a labelled reference line across the chart: horizontal at a y
// value, or vertical at an x value.
type Mark struct {
	Label    string
	Value    float64
	Vertical bool
}

// Colors of the two systems, and of marks.
var (
	BaselineColor  = color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}
	ReferenceColor = color.RGBA{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}
	markColor      = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// PNG renders c as a Width x Height PNG.
func (c Chart) PNG(w io.Writer) error {
	p := gplot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	if c.LogY {
		p.Y.Scale = gplot.LogScale{}
		p.Y.Tick.Marker = gplot.LogTicks{Prec: -1}
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, l := range c.Lines {
		if len(l.X) != len(l.Y) {
			return fmt.Errorf("plot %q: line %q has %d x and %d y values", c.Title, l.Name, len(l.X), len(l.Y))
		}
		style := draw.LineStyle{Color: l.Color, Width: vg.Points(1.2)}
		if l.Dashed {
			style.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		var legend *plotter.Line
		for _, seg := range segments(l.X, l.Y, c.LogY) {
			line, err := plotter.NewLine(seg)
			if err != nil {
				return fmt.Errorf("plot %q: line %q: %w", c.Title, l.Name, err)
			}
			line.LineStyle = style
			p.Add(line)
			if legend == nil {
				legend = line
			}
			for _, pt := range seg {
				xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
				ymin, ymax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y)
			}
		}
		if legend != nil {
			p.Legend.Add(l.Name, legend)
		} else {
			p.Legend.Add(l.Name+" (no data)", &plotter.Line{LineStyle: style})
		}
	}
	if math.IsInf(xmin, 1) { // nothing to draw: an empty, labelled frame
		xmin, xmax, ymin, ymax = 0, 1, 1, 10
	}
	for _, m := range c.Marks {
		if m.Vertical {
			xmin, xmax = math.Min(xmin, m.Value), math.Max(xmax, m.Value)
		} else if !c.LogY || m.Value > 0 {
			ymin, ymax = math.Min(ymin, m.Value), math.Max(ymax, m.Value*1.05)
		}
	}
	if !c.LogY {
		ymin = math.Min(ymin, 0)
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	// Headroom above the data for the legend, a line per entry.
	entries := float64(len(c.Lines) + len(c.Marks))
	if c.LogY {
		ymax *= math.Pow(ymax/ymin, 0.07*entries)
	} else {
		ymax += (ymax - ymin) * 0.07 * entries
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = xmin, xmax, ymin, ymax
	if c.TimeX {
		minutes := xmax-xmin > MinutesAfter
		p.X.Tick.Marker = TimeTicks{Minutes: minutes}
		if minutes {
			p.X.Label.Text = c.XLabel + " (min)"
		} else {
			p.X.Label.Text = c.XLabel + " (s)"
		}
	}
	for _, m := range c.Marks {
		pts := plotter.XYs{{X: xmin, Y: m.Value}, {X: xmax, Y: m.Value}}
		if m.Vertical {
			pts = plotter.XYs{{X: m.Value, Y: ymin}, {X: m.Value, Y: ymax}}
		}
		if !m.Vertical && c.LogY && m.Value <= 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %q: mark %q: %w", c.Title, m.Label, err)
		}
		line.LineStyle = draw.LineStyle{Color: markColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
		p.Add(line)
		p.Legend.Add(m.Label, line)
	}
	out, err := p.WriterTo(Width, Height, "png")
	if err != nil {
		return err
	}
	_, err = out.WriteTo(w)
	return err
}

// segments splits a series at NaN points (and, on a log axis, at points
// at or below 0) into runs that can each be drawn as one line.
func segments(x, y []float64, logY bool) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for i := range x {
		if math.IsNaN(x[i]) || math.IsNaN(y[i]) || math.IsInf(y[i], 0) || (logY && y[i] <= 0) {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: x[i], Y: y[i]})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
